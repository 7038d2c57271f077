"""Delivery reports (RFC 3464) from the Dequeuer, read back with Python's `email` package, and the queue
commands (ListQueue, GetModule Queue).

A message dropped in `Submitted/` for an unknown user fails; the sender's account gets one
`multipart/report; report-type=delivery-status` message from `<>` with the headers of the failed message
(On Failure, Return: headers by default). A failure for a `<>` sender produces no report.

Needs the whole mail path in gatehoused: PIPE (pipe), the queue (queue), the Router (router) and Local
Delivery (local).
"""

import email
import email.policy
import mailbox
import os
import time
import uuid

from cli_helpers import cli

WAIT = 30.0


def drop(server, name, text):
    sub = server.base / "Submitted"
    sub.mkdir(exist_ok=True)
    tmp = sub / f"{name}.tmp"
    tmp.write_text(text)
    os.rename(tmp, sub / f"{name}.sub")


def inbox_messages(server, account):
    path = server.base / "Accounts" / f"{account}.macnt" / "INBOX.mbox"
    if not path.exists():
        return []
    box = mailbox.mbox(str(path), create=False)
    try:
        return [email.message_from_bytes(m.as_bytes(), policy=email.policy.default) for m in box]
    finally:
        box.close()


def wait_for(pred, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(0.2)
    return pred()


def queue_empty(server):
    return not [p for p in (server.base / "Queue").iterdir() if p.suffix in (".msg", ".tmp")]


def test_failure_report_reaches_the_sender(server, gatehouse_bin):
    cli(gatehouse_bin, server, "CreateAccount", "sender", check=True)
    marker = uuid.uuid4().hex
    drop(server, "dsn1", (
        "Return-Path: <sender@example.test>\n"
        "From: sender@example.test\n"
        "To: nobody-here@example.test\n"
        f"Subject: dsn {marker}\n"
        "\n"
        "The body must not come back.\n"
    ))
    reports = wait_for(lambda: [m for m in inbox_messages(server, "sender") if marker in (m["Subject"] or "")])
    assert len(reports) == 1, "no failure report in the sender's INBOX"
    r = reports[0]
    assert r.get_content_type() == "multipart/report"
    assert r.get_param("report-type") == "delivery-status"
    assert r["Subject"].startswith("Undeliverable mail: dsn ")
    assert "MAILER-DAEMON@" in r["From"]
    parts = list(r.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    status = parts[1]
    # message/delivery-status: a list of field blocks (per-message, then one per recipient).
    blocks = [b for b in status.get_payload()]
    fields = {k.lower(): v for b in blocks for k, v in b.items()}
    assert fields["reporting-mta"].startswith("dns;")
    assert fields["final-recipient"].lower() == "rfc822; nobody-here@example.test"
    assert fields["action"] == "failed"
    assert fields["status"].startswith("5.")
    returned = parts[2].get_content()
    assert marker in returned and "The body must not come back" not in returned
    assert wait_for(lambda: queue_empty(server))


def test_no_report_for_a_null_sender_and_the_queue_commands(server, gatehouse_bin):
    cli(gatehouse_bin, server, "CreateAccount", "sender", check=True)
    queue = cli(gatehouse_bin, server, "GetModule", "Queue", json=True)
    assert queue["Processors"] == "1" and queue["OnFailureReturn"] == "headers by default"
    marker = uuid.uuid4().hex
    drop(server, "dsn2", (
        "Return-Path: <>\n"
        "From: sender@example.test\n"
        "To: nobody-here@example.test\n"
        f"Subject: null {marker}\n"
        "\n"
        "x\n"
    ))
    assert wait_for(lambda: not (server.base / "Submitted" / "dsn2.sub").exists())
    assert wait_for(lambda: queue_empty(server))
    time.sleep(1.0)
    assert not [m for m in inbox_messages(server, "sender") if marker in str(m)]
    assert cli(gatehouse_bin, server, "ListQueue", json=True) == []
    assert cli(gatehouse_bin, server, "RetryQueue").returncode == 0
    status = cli(gatehouse_bin, server, "GetServerStatus", json=True)
    assert status["QueueSize"] == "0"
