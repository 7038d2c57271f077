"""The PIPE module (issue 4 item 7, guide.txt:13832-14048): `.sub` files dropped in `Submitted/` reach
the recipients' INBOX.mbox (read back with Python's `mailbox.mbox`); bad files become `.bad`; delivery to
an application named by a Router record.

Needs the whole mail path in gatehoused: PIPE wired in server/mod.rs with the Enqueuer (queue), the Router
(router) and Local Delivery (local).
"""

import os
import time
import uuid

from cli_helpers import cli
from mail_helpers import WAIT, drop, messages_with



def wait_gone(path, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not path.exists()


def accounts(gatehouse_bin, server, *names):
    for n in names:
        cli(gatehouse_bin, server, "CreateAccount", n, check=True)


def test_to_cc_bcc_and_return_path(server, gatehouse_bin):
    accounts(gatehouse_bin, server, "anna", "bob", "carl")
    marker = uuid.uuid4().hex
    drop(server, "m1", (
        "Return-Path: <bounces@example.test>\n"
        "From: Sender <sender@example.test>\n"
        "To: Anna <anna@example.test>\n"
        "Cc: bob\n"
        "Bcc: carl@example.test\n"
        f"Subject: pipe {marker}\n"
        "\n"
        "Line one.\n"
        ".\n"
        "Last line.\n"
    ))
    assert wait_gone(server.base / "Submitted" / "m1.sub"), "the .sub file was not taken"
    for who in ("anna", "bob", "carl"):
        got = messages_with(server, who, marker)
        assert len(got) == 1, f"{who} did not get the message"
        m = got[0]
        assert m["Bcc"] is None, "Bcc must be removed (guide.txt:13865)"
        assert m["Envelope-To"] is None
        assert m["From"] == "Sender <sender@example.test>"
        body = m.get_payload()
        assert "Line one.\n.\nLast line.\n" in body.replace("\r\n", "\n")
        assert "bounces@example.test" in (m.get_from() or "") + (m["Return-Path"] or "")


def test_envelope_to_and_envelope_ignore(server, gatehouse_bin):
    accounts(gatehouse_bin, server, "dora", "emil", "fred")
    m2 = uuid.uuid4().hex
    drop(server, "m2", (
        "From: sender@example.test\n"
        "To: dora@example.test\n"
        "Envelope-To: emil@example.test\n"
        f"Subject: only emil {m2}\n\nbody\n"
    ))
    m3 = uuid.uuid4().hex
    drop(server, "m3", (
        "From: sender@example.test\n"
        "To: dora@example.test, fred@example.test\n"
        "Envelope-Ignore: fred@example.test\n"
        f"Subject: not fred {m3}\n\nbody\n"
    ))
    got = messages_with(server, "emil", m2)
    assert len(got) == 1 and got[0]["Envelope-To"] is None and got[0]["To"] == "dora@example.test"
    got = messages_with(server, "dora", m3)
    assert len(got) == 1 and got[0]["Envelope-Ignore"] is None
    # By now the other deliveries of both files are done as well: none of them went here.
    assert messages_with(server, "dora", m2, timeout=1) == []
    assert messages_with(server, "fred", m3, timeout=1) == []


def test_bad_and_partial_files(server):
    sub = server.base / "Submitted"
    sub.mkdir(exist_ok=True)
    (sub / "norcpt.sub").write_text("From: a@example.test\nSubject: nobody\n\nbody\n")
    (sub / "garbage.sub").write_bytes(b"\x00\x01\x02 this is not a message\n")
    (sub / "partial.tmp").write_text("To: postmaster@example.test\n\nnot yet\n")
    deadline = time.monotonic() + WAIT
    while not ((sub / "norcpt.bad").exists() and (sub / "garbage.bad").exists()):
        assert time.monotonic() < deadline, f"no .bad files; Submitted/ holds {sorted(os.listdir(sub))}"
        time.sleep(0.1)
    assert not (sub / "norcpt.sub").exists() and not (sub / "garbage.sub").exists()
    time.sleep(1.5)
    assert (sub / "partial.tmp").exists(), "a .tmp file must be left alone"


def test_delivery_to_an_application(server, gatehouse_bin):
    apps = server.base / "PipeApps"
    apps.mkdir()
    out = server.base.parent / "archived.eml"
    script = apps / "archive"
    script.write_text(f'#!/bin/sh\ncat > "{out}"\n')
    script.chmod(0o755)
    cli(gatehouse_bin, server, "UpdateModule", "PIPE", "{ApplicationDirectory=PipeApps;}", check=True)
    cli(gatehouse_bin, server, "SetRouterTable", "<archive> = archive@pipe", check=True)
    marker = uuid.uuid4().hex
    drop(server, "m4", f"From: sender@example.test\nTo: archive@example.test\nSubject: {marker}\n\nkeep me\n")
    deadline = time.monotonic() + WAIT
    while not (out.exists() and marker in out.read_text(errors="replace")):
        assert time.monotonic() < deadline, "the application did not get the message"
        time.sleep(0.1)
    text = out.read_text(errors="replace").replace("\r\n", "\n")
    assert "keep me\n" in text
