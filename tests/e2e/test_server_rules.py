"""Server-Wide Rules (issue 4 item 5, guide.txt:9896-9932): the Enqueuer applies them to every
message — a Reject refuses it (SMTP answers 554 with the rule's text), a Discard drops it, Add
Headers marks it, and Redirect sends a copy elsewhere."""

import smtplib
import time
import uuid

import pytest

from cli_helpers import cli
from mail_helpers import messages_with


def send(server, to, subject):
    with smtplib.SMTP("127.0.0.1", server.port(25), timeout=15) as s:
        s.sendmail("outside@far.example", [to], f"From: outside@far.example\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nbody\r\n")


def test_server_rules_apply_to_every_message(server, gatehouse_bin):
    ok = lambda *a, **k: cli(gatehouse_bin, server, *a, check=True, **k)
    ok("CreateAccount", "alice")
    ok("CreateAccount", "archive")
    rules = ('((9, "no spam", ((Subject, is, "*SPAM*")), (("Reject with", "spam is not welcome here"))),'
             ' (8, "drop noise", ((Subject, is, "*noise*")), ((Discard))),'
             ' (5, "tag and copy", (), (("Add Headers", "X-Scanned: gatehouse"), ("Mirror to", "archive@example.test"))))')
    ok("SetServerRules", rules)
    assert ok("GetServerRules", json=True)[0][1] == "no spam"

    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(server, "alice@example.test", "buy SPAM now")
    assert refused.value.smtp_code == 554 and b"spam is not welcome here" in refused.value.smtp_error

    noise = f"noise-{uuid.uuid4().hex[:6]}"
    send(server, "alice@example.test", noise)
    kept = f"kept-{uuid.uuid4().hex[:6]}"
    send(server, "alice@example.test", kept)
    got = messages_with(server, "alice", kept)
    assert len(got) == 1 and got[0]["X-Scanned"] == "gatehouse"
    assert messages_with(server, "archive", kept), "the Mirror copy reached the archive"
    time.sleep(1)
    assert not messages_with(server, "alice", noise, timeout=0.5), "Discard dropped the message"

    ok("SetServerRules", "()")
    plain = f"plain-{uuid.uuid4().hex[:6]}"
    send(server, "alice@example.test", plain)
    assert messages_with(server, "alice", plain)[0]["X-Scanned"] is None
