"""Account sessions (issue 6, an extension: the guide has no session list or per-account limit),
driven by Python's imaplib and poplib, curl for WebMail, and the real `gatehouse` client: sessions are listed with
the selected mailbox, GETMAILBOXSESSIONS finds who has a mailbox open, MaxAccountSessions refuses
a login beyond it (IMAP `NO [LIMIT]`, POP `-ERR [IN-USE]`) and the connection stays usable,
KillAccountSessions ends sessions (IMAP `* BYE`, POP `-ERR` then close, nothing deleted; WebMail
at its next request), WebAdmin's account page lists and ends them, and the listener's
MaxPerAddress refuses connections from the same address.
"""

import imaplib
import poplib
import re
import socket
import subprocess
import time

import pytest

from cli_helpers import cli
from test_webmail import login_post

MSG = b"From: a@example.test\r\nTo: bob@example.test\r\nSubject: s\r\n\r\nbody\r\n"


@pytest.fixture
def srv(server, gatehouse_bin):
    for name, pw in (("bob", "pw"), ("eve", "epw")):
        cli(gatehouse_bin, server, "CreateAccount", name, "{Password=" + pw + ";}", check=True)
    server.run = lambda *a, **k: cli(gatehouse_bin, server, *a, **k)
    return server


def sessions(srv, account="bob", **kw):
    return srv.run("ListAccountSessions", account, json=True, check=True, **kw)


def wait_for(pred, what, timeout=5):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def imap_login(srv, user="bob", password="pw"):
    m = imaplib.IMAP4("127.0.0.1", srv.port(143), timeout=10)
    m.login(user, password)
    return m


def pop_login(srv, user="bob", password="pw"):
    p = poplib.POP3("127.0.0.1", srv.port(110), timeout=10)
    p.user(user)
    p.pass_(password)
    return p


def test_list_sessions_with_the_selected_mailbox(srv):
    assert sessions(srv) == []
    m = imap_login(srv)
    assert m.create("Work")[0] == "OK"
    p = pop_login(srv)
    listed = sessions(srv)
    assert [s["Module"] for s in listed] == ["IMAP", "POP"], listed
    assert all(s["Address"] == "127.0.0.1" and len(s["Since"]) == 19 for s in listed), listed
    assert "Mailbox" not in listed[0] and listed[1]["Mailbox"] == "INBOX", listed

    assert m.select("Work")[0] == "OK"
    assert sessions(srv)[0]["Mailbox"] == "Work"
    who = srv.run("GETMAILBOXSESSIONS", "bob", "MAILBOX", "Work", json=True, check=True)
    assert [(s["Account"].split("@")[0], s["Module"]) for s in who] == [("bob", "IMAP")], who
    inbox = srv.run("GETMAILBOXSESSIONS", "bob", "MAILBOX", "INBOX", json=True, check=True)
    assert [s["Module"] for s in inbox] == ["POP"], inbox

    assert m.select("INBOX", readonly=True)[0] == "OK"  # EXAMINE
    inbox = srv.run("GETMAILBOXSESSIONS", "bob", "MAILBOX", "INBOX", json=True, check=True)
    assert sorted(s["Module"] for s in inbox) == ["IMAP", "POP"], inbox
    assert m.close()[0] == "OK"
    assert "Mailbox" not in sessions(srv)[0]

    # A user lists their own sessions, not another account's.
    assert sessions(srv, "bob", user="bob", password="pw")[0]["Module"] == "IMAP"
    other = srv.run("ListAccountSessions", "bob", user="eve", password="epw")
    assert other.returncode != 0 and other.stderr.strip(), other

    m.logout()
    p.quit()
    wait_for(lambda: sessions(srv) == [], "the sessions to leave the registry")


def test_max_account_sessions(srv):
    srv.run("UpdateAccountSettings", "bob", "{MaxAccountSessions=2;}", check=True)
    first, second = imap_login(srv), pop_login(srv)

    # IMAP: NO [LIMIT] (RFC 5530), the connection stays in the not-authenticated state.
    m = imaplib.IMAP4("127.0.0.1", srv.port(143), timeout=10)
    with pytest.raises(imaplib.IMAP4.error, match=r"\[LIMIT\]"):
        m.login("bob", "pw")
    assert m.noop()[0] == "OK"
    # Another account is not affected.
    m.login("eve", "epw")
    m.logout()

    # POP: -ERR [IN-USE]; still in AUTHORIZATION, so USER/PASS may be sent again.
    p = poplib.POP3("127.0.0.1", srv.port(110), timeout=10)
    p.user("bob")
    with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
        p.pass_("pw")
    assert p.capa()

    log = srv.run("ReadLog", "TEXT", "too many sessions", json=True, check=True)
    assert {r["Tag"].split("-")[0] for r in log} >= {"IMAP", "POP"}, log

    # A slot freed is a slot available: the waiting POP client now gets in.
    first.logout()
    wait_for(lambda: len(sessions(srv)) == 1, "the IMAP session to end")
    p.user("bob")
    assert p.pass_("pw").startswith(b"+OK")
    p.quit()
    second.quit()

    # 0 means no limit.
    srv.run("UpdateAccountSettings", "bob", "{MaxAccountSessions=0;}", check=True)
    many = [imap_login(srv) for _ in range(4)]
    assert len(sessions(srv)) == 4
    for c in many:
        c.logout()


def test_kill_account_sessions(srv):
    m = imap_login(srv)
    assert m.select("INBOX")[0] == "OK"
    idler = imap_login(srv)
    assert idler.select("INBOX")[0] == "OK"
    idler.send(b"I1 IDLE\r\n")
    assert idler.readline().startswith(b"+ ")
    p = pop_login(srv)
    e = imap_login(srv, "eve", "epw")
    assert len(sessions(srv)) == 3

    # Only a domain administrator may end another account's sessions.
    refused = srv.run("KillAccountSessions", "bob", user="eve", password="epw")
    assert refused.returncode != 0
    srv.run("KillAccountSessions", "bob", check=True)

    # IMAP, idle in the selected state: an untagged BYE, then the connection closes.
    m.sock.settimeout(5)
    assert m.readline().startswith(b"* BYE"), "no BYE"
    assert m.readline() == b""
    # IMAP in IDLE: the same.
    idler.sock.settimeout(5)
    assert idler.readline().startswith(b"* BYE")
    assert idler.readline() == b""
    # POP: -ERR answers the next command, then the connection is closed.
    with pytest.raises((poplib.error_proto, OSError)):
        p.noop()
        p.noop()
    wait_for(lambda: sessions(srv) == [], "the killed sessions to leave the registry")
    # Eve was not touched.
    assert e.noop()[0] == "OK"
    assert len(sessions(srv, "eve")) == 1
    e.logout()
    # And bob can log in again.
    imap_login(srv).logout()


def test_kill_does_not_delete_pop_messages(srv, gatehouse_bin):
    m = imap_login(srv)
    assert m.append("INBOX", None, None, MSG)[0] == "OK"
    m.logout()
    p = pop_login(srv)
    assert p.stat()[0] == 1
    assert p.dele(1).startswith(b"+OK")
    srv.run("KillAccountSessions", "bob", check=True)
    p.sock.settimeout(5)
    assert p.file.readline().startswith(b"-ERR")
    wait_for(lambda: sessions(srv) == [], "the POP session to end")
    # RFC 1939 §6: no UPDATE state, so the DELE is forgotten.
    p2 = pop_login(srv)
    assert p2.stat()[0] == 1
    p2.quit()


def test_per_address_limit(srv):
    # guide.txt:4738 "Max Connections from same Address", counted across the listener's sockets.
    srv.run("UpdateModule", "IMAP",
            "{Listener={Sockets=({Port=143;Address=all;SSL=No;},{Port=993;Address=all;SSL=Yes;});"
            "MaxPerAddress=2;};}", check=True)
    a = imaplib.IMAP4("127.0.0.1", srv.port(143), timeout=10)
    b = imaplib.IMAP4("127.0.0.1", srv.port(143), timeout=10)
    # The third from 127.0.0.1 is closed at once, with no greeting.
    with socket.create_connection(("127.0.0.1", srv.port(143)), timeout=5) as s:
        assert s.recv(100) == b""
    a.logout()
    wait_for(lambda: _greets(srv), "a slot to free up")
    b.logout()


def _greets(srv):
    with socket.create_connection(("127.0.0.1", srv.port(143)), timeout=5) as s:
        return s.recv(100).startswith(b"* OK")


def curl(server, path, *args, port=8100):
    """Runs curl against WebUser (8100) or WebAdmin (8010); returns (status, body, headers)."""
    cmd = ["curl", "-s", "-S", "-D", "/dev/stderr", "-o", "-", "-w", "\n%{http_code}",
           "--max-time", "20", *args, f"http://127.0.0.1:{server.port(port)}{path}"]
    p = subprocess.run(cmd, capture_output=True, check=True)
    body, _, code = p.stdout.decode("utf-8", "replace").rpartition("\n")
    return int(code), body, p.stderr.decode("utf-8", "replace")


def webmail_login(srv):
    """Logs bob in to WebMail as a browser does (the login page's token first)."""
    return login_post(f"http://127.0.0.1:{srv.port(8100)}/", "username=bob&password=pw")


def test_webmail_sessions_are_listed_counted_and_killed(srv):
    code, _, headers = webmail_login(srv)
    assert code == 303, headers
    sid = re.search(r"(?im)^location: /Session/([^/\s]+)/", headers).group(1)
    assert [s["Module"] for s in sessions(srv)] == ["WebMail"]

    # WebMail counts against MaxAccountSessions, and is refused past it.
    srv.run("UpdateAccountSettings", "bob", "{MaxAccountSessions=2;}", check=True)
    m = imap_login(srv)
    with pytest.raises(imaplib.IMAP4.error, match=r"\[LIMIT\]"):
        imap_login(srv)
    code, body, _ = webmail_login(srv)
    assert code == 503 and "Too many sessions" in body, (code, body)

    srv.run("KillAccountSessions", "bob", check=True)
    m.sock.settimeout(5)
    assert m.readline().startswith(b"* BYE")
    # The killed WebMail session is gone at its next request.
    code, body, _ = curl(srv, f"/Session/{sid}/Mailboxes.wssp")
    assert code == 403 and "session has ended" in body
    wait_for(lambda: sessions(srv) == [], "the killed sessions to leave the registry")


def test_webadmin_account_page_lists_and_ends_sessions(srv):
    m = imap_login(srv)
    assert m.select("INBOX")[0] == "OK"
    auth = ("-u", f"postmaster:{srv.password}")
    page = f"/Domain/{srv.main_domain}/Account/bob"
    code, body, _ = curl(srv, page, *auth, port=8010)
    assert code == 200 and "<h2>Sessions</h2>" in body, (code, body)
    assert "<td>IMAP</td><td>127.0.0.1</td>" in body and "<td>INBOX</td>" in body, body
    csrf = re.search(r'name="csrf" value="([^"]+)"', body).group(1)
    code, body, _ = curl(srv, page, *auth, "-d", f"action=sessions&csrf={csrf}", port=8010)
    assert code == 200 and "The sessions are being ended." in body, body
    m.sock.settimeout(5)
    assert m.readline().startswith(b"* BYE")
    wait_for(lambda: sessions(srv) == [], "the killed session to leave the registry")
    _, body, _ = curl(srv, page, *auth, port=8010)
    assert "No IMAP, POP or WebMail session is open." in body
