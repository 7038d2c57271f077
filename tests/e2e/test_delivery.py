"""Issue 4's delivery matrix: `.sub` files dropped in `Submitted/` for local, aliased, forwarded,
grouped, unknown and `+detail` recipients land where the guide says; the mailboxes read back with
Python's `mailbox.mbox` and with `mutt -f`. Failure reports are covered by test_dsn.py."""

import shutil
import subprocess
import time
import uuid

from cli_helpers import cli
from mail_helpers import drop, inbox, messages_with


def sub(to, marker, sender="sender@example.test"):
    return f"Return-Path: <{sender}>\nFrom: {sender}\nTo: {to}\nSubject: {marker}\n\nbody of {marker}\n"


def test_recipients_land_where_the_guide_says(server, gatehouse_bin):
    ok = lambda *a, **k: cli(gatehouse_bin, server, *a, check=True, **k)
    for name in ("alice", "bob", "carol", "sender"):
        ok("CreateAccount", name)
    ok("SetAccountAliases", "alice", "(ally)")
    ok("CreateForwarder", "fwd", "TO", "bob@example.test")
    ok("CreateGroup", "team", "{Members=(alice,carol);}")
    ok("CreateMailbox", "carol", "MAILBOX", "Projects")
    m = {k: f"{k}-{uuid.uuid4().hex[:8]}" for k in ("local", "alias", "fwd", "group", "detail", "direct", "unknown")}
    drop(server, "local", sub("alice@example.test", m["local"]))
    drop(server, "alias", sub("ally@example.test", m["alias"]))
    drop(server, "fwd", sub("fwd@example.test", m["fwd"]))
    drop(server, "group", sub("team@example.test", m["group"]))
    drop(server, "detail", sub("carol+news@example.test", m["detail"]))
    drop(server, "direct", sub("Projects#carol@example.test", m["direct"]))
    drop(server, "unknown", sub("nobody@example.test", m["unknown"]))

    assert len(messages_with(server, "alice", m["local"])) == 1
    assert len(messages_with(server, "alice", m["alias"])) == 1
    assert len(messages_with(server, "bob", m["fwd"])) == 1
    assert len(messages_with(server, "alice", m["group"])) == 1
    assert len(messages_with(server, "carol", m["group"])) == 1
    # guide.txt:12269-12289: an account+detail address reaches the account (INBOX unless a Rule says).
    assert len(messages_with(server, "carol", m["detail"])) == 1
    # guide.txt:12226-12248: mailbox#account stores straight into that mailbox.
    projects = server.base / "Accounts" / "carol.macnt" / "Projects.mbox"
    deadline = time.monotonic() + 20
    while not (projects.exists() and m["direct"] in projects.read_text(errors="replace")):
        assert time.monotonic() < deadline, "nothing in carol's Projects mailbox"
        time.sleep(0.1)
    assert not messages_with(server, "carol", m["direct"], timeout=0.5)
    # An unknown name is refused (the domain's default) and the sender gets a failure report.
    reports = messages_with(server, "sender", "", timeout=20)
    assert any(m["unknown"] in r.as_string() for r in reports), "no failure report for the unknown user"

    # Every message came in through the Enqueuer: Return-Path and Received are there.
    got = messages_with(server, "alice", m["local"])[0]
    assert got["Return-Path"] == "<sender@example.test>"
    assert got["Received"]


def test_mutt_reads_the_mailbox(server, gatehouse_bin):
    assert shutil.which("mutt") and shutil.which("tmux"), "tests/run-all.sh installs mutt and tmux"
    cli(gatehouse_bin, server, "CreateAccount", "reader", check=True)
    marker = f"for-mutt-{uuid.uuid4().hex[:8]}"
    drop(server, "m1", sub("reader@example.test", marker))
    assert messages_with(server, "reader", marker)
    session = f"mutt{server.offset}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "160", "-y", "30",
                    f"mutt -n -R -F /dev/null -e 'set folder={server.base}' -f {inbox(server, 'reader')}"], check=True)
    try:
        deadline = time.monotonic() + 10
        screen = ""
        while marker not in screen:
            assert time.monotonic() < deadline, screen
            time.sleep(0.2)
            screen = subprocess.run(["tmux", "capture-pane", "-t", session, "-p"],
                                    capture_output=True, text=True).stdout
        subprocess.run(["tmux", "send-keys", "-t", session, "Enter"], check=True)
        time.sleep(0.5)
        screen = subprocess.run(["tmux", "capture-pane", "-t", session, "-p"], capture_output=True, text=True).stdout
        assert f"body of {marker}" in screen, screen
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def test_flow_control_suspends_a_flooded_account(server, gatehouse_bin):
    """guide.txt:12062-12075: more than N messages to one account within T suspend its queue
    (mail-loop protection); the rest wait in the queue, nothing is lost."""
    ok = lambda *a, **k: cli(gatehouse_bin, server, *a, check=True, **k)
    ok("CreateAccount", "flooded")
    ok("UpdateModule", "LOCAL", "{SuspendAfterMessages=3;SuspendWithin=600;}")
    bad = cli(gatehouse_bin, server, "UpdateModule", "LOCAL", "{SuspendAfterMessages=none;}")
    assert bad.returncode == 1 and "SuspendAfterMessages" in bad.stderr
    marker = f"flood-{uuid.uuid4().hex[:6]}"
    for i in range(5):
        drop(server, f"flood{i}", sub("flooded@example.test", f"{marker}-{i}"))
    deadline = time.monotonic() + 20
    while len(messages_with(server, "flooded", marker, timeout=0.2)) < 3:
        assert time.monotonic() < deadline
    deadline = time.monotonic() + 20
    while True:
        held = [m for m in ok("ListQueue", json=True) if "Flow Control" in m["State"]]
        if len(held) == 2:
            break
        assert time.monotonic() < deadline, ok("ListQueue", json=True)
        time.sleep(0.2)
    assert len(messages_with(server, "flooded", marker, timeout=0.2)) == 3
