"""The POP module (issue 6) driven by Python's poplib and curl: RFC 1939 commands, APOP, AUTH,
STLS, port 995, CAPA, the snapshot view, `mailbox#account` and bad input.

Messages are put into the account's INBOX.mbox as a legacy mbox (plain `From ` lines, which the
mailbox reader indexes) before the first login opens it.
"""

import base64
import hashlib
import hmac
import poplib
import shutil
import ssl
import subprocess
import time

import pytest

from cli_helpers import cli

MSG = [
    b"From: a@example.test\nTo: alice@example.test\nSubject: first\n\nline one\n.starts with a dot\nline three\n",
    b"From: b@example.test\nTo: alice@example.test\nSubject: second\n\nhello\n",
    b"From: c@example.test\nTo: alice@example.test\nSubject: third\n\nbye\n",
]


def account_dir(server, name):
    return server.base / "Accounts" / f"{name}.macnt"


def write_legacy_mbox(path, messages, mode="wb"):
    with open(path, mode) as f:
        for m in messages:
            f.write(b"From sender@example.test Thu Nov 26 10:00:00 2026\n" + m + b"\n")


@pytest.fixture
def pop(server, gatehouse_bin):
    """The server with `alice` (password `pw`, three messages) and `ann` (clear password, for
    APOP and CRAM-MD5)."""
    cli(gatehouse_bin, server, "CreateAccount", "alice", "{Password=pw;}", check=True)
    cli(gatehouse_bin, server, "CreateAccount", "ann", "{PasswordEncryption=clear;Password=apw;}",
        check=True)
    write_legacy_mbox(account_dir(server, "alice") / "INBOX.mbox", MSG)
    return server


def connect(server):
    return poplib.POP3("127.0.0.1", server.port(110), timeout=10)


def login(server, user="alice", password="pw"):
    p = connect(server)
    p.user(user)
    p.pass_(password)
    return p


def insecure_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_capa_and_greeting(pop):
    p = connect(pop)
    assert p.getwelcome().startswith(b"+OK") and b"<" in p.getwelcome()
    caps = p.capa()
    for c in ("TOP", "UIDL", "USER", "STLS", "SASL", "PIPELINING"):
        assert c in caps, caps
    assert caps["SASL"] == ["CRAM-MD5", "PLAIN", "LOGIN"]
    p.quit()


def test_transaction_commands(pop):
    p = login(pop)
    count, size = p.stat()
    assert count == 3 and size > 0
    resp, listing, _ = p.list()
    assert len(listing) == 3
    resp, uidls, _ = p.uidl()
    uids = [line.split()[1] for line in uidls]
    assert len(set(uids)) == 3
    resp, lines, _ = p.top(1, 0)
    assert b"Subject: first" in lines and b"line one" not in lines
    resp, lines, _ = p.top(1, 1)
    assert lines[-1] == b"line one"
    resp, lines, _ = p.retr(1)
    assert lines[-3:] == [b"line one", b".starts with a dot", b"line three"]
    assert p.noop().startswith(b"+OK")
    p.dele(2)
    with pytest.raises(poplib.error_proto):
        p.retr(2)
    assert p.stat()[0] == 2
    p.rset()
    assert p.stat()[0] == 3
    p.dele(2)
    p.quit()

    p = login(pop)
    assert p.stat()[0] == 2
    resp, uidls, _ = p.uidl()
    # Unique ids survive across sessions; message 2's is gone.
    assert [line.split()[1] for line in uidls] == [uids[0], uids[2]]
    resp, lines, _ = p.retr(2)
    assert b"Subject: third" in lines
    p.quit()


def test_no_quit_no_delete(pop):
    p = login(pop)
    p.dele(1)
    p.sock.close()
    time.sleep(0.3)
    p = login(pop)
    assert p.stat()[0] == 3
    p.quit()


def test_snapshot_view(pop):
    a = login(pop)
    assert a.stat()[0] == 3
    # Mail arriving during the session (here: another program appending) is not shown.
    write_legacy_mbox(account_dir(pop, "alice") / "INBOX.mbox", [b"Subject: late\n\nnew\n"], "ab")
    assert a.stat()[0] == 3
    a.quit()
    time.sleep(0.3)
    b = login(pop)
    assert b.stat()[0] == 4
    b.quit()


def test_login_failures_look_alike(pop):
    p = connect(pop)
    p.user("nobody")
    with pytest.raises(poplib.error_proto) as unknown:
        p.pass_("pw")
    p.user("alice")
    with pytest.raises(poplib.error_proto) as wrong:
        p.pass_("bad")
    assert unknown.value.args == wrong.value.args
    assert b"Incorrect Account Name or Password" in wrong.value.args[0]
    # The session goes on.
    p.user("alice@example.test")
    p.pass_("pw")
    assert p.stat()[0] == 3
    p.quit()


def test_apop(pop):
    p = connect(pop)
    p.apop("ann", "apw")
    assert p.stat() == (0, 0)
    p.quit()
    p = connect(pop)
    with pytest.raises(poplib.error_proto):
        p.apop("ann", "wrong")
    p.quit()


def test_auth_plain_and_cram_md5(pop):
    p = connect(pop)
    token = base64.b64encode(b"\0alice\0pw").decode()
    assert p._shortcmd(f"AUTH PLAIN {token}").startswith(b"+OK")
    assert p.stat()[0] == 3
    p.quit()

    p = connect(pop)
    challenge = p._shortcmd("AUTH CRAM-MD5")
    assert challenge.startswith(b"+ ")
    digest = hmac.new(b"apw", base64.b64decode(challenge[2:]), hashlib.md5).hexdigest()
    assert p._shortcmd(base64.b64encode(f"ann {digest}".encode()).decode()).startswith(b"+OK")
    p.quit()

    # Bare AUTH lists the mechanisms (guide.txt:14530-14532).
    p = connect(pop)
    resp, mechs, _ = p._longcmd("AUTH")
    assert mechs == [b"CRAM-MD5", b"PLAIN", b"LOGIN"]
    p.quit()


def test_stls(pop):
    p = connect(pop)
    p.stls(context=insecure_context())
    assert "STLS" not in p.capa()
    p.user("alice")
    p.pass_("pw")
    assert p.stat()[0] == 3
    p.quit()


def test_pop3s_port_995(pop):
    p = poplib.POP3_SSL("127.0.0.1", pop.port(995), context=insecure_context(), timeout=10)
    p.user("alice")
    p.pass_("pw")
    assert p.stat()[0] == 3
    p.quit()


def test_other_mailbox(pop):
    write_legacy_mbox(account_dir(pop, "alice") / "private.mbox", [b"Subject: secret\n\nx\n"])
    p = login(pop, "private#alice")
    assert p.stat()[0] == 1
    assert b"Subject: secret" in p.retr(1)[1]
    p.quit()
    p = connect(pop)
    p.user("missing#alice")
    with pytest.raises(poplib.error_proto, match="does not exist"):
        p.pass_("pw")
    p.quit()


def test_bad_commands_keep_session(pop):
    p = connect(pop)
    for cmd in ("HELO", "RETR 1", "USER", "X" * 400):
        with pytest.raises(poplib.error_proto):
            p._shortcmd(cmd)
    p.user("alice")
    p.pass_("pw")
    for cmd in ("RETR 0", "RETR 99", "TOP 1", "DELE x", "XTND XMIT"):
        with pytest.raises(poplib.error_proto):
            p._shortcmd(cmd)
    assert p.stat()[0] == 3
    p.quit()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl(pop):
    # curl picks the strongest SASL mechanism offered, CRAM-MD5, which needs a clear password
    # (ann); alice's one-way password needs PLAIN or USER/PASS.
    write_legacy_mbox(account_dir(pop, "ann") / "INBOX.mbox", MSG[:1])
    url = f"pop3://127.0.0.1:{pop.port(110)}"

    def run(user, *a):
        return subprocess.run(["curl", "-s", "-S", "--max-time", "20", "-u", user, *a],
                              capture_output=True, timeout=30)

    listing = run("alice:pw", "--login-options", "AUTH=PLAIN", url + "/")
    assert listing.returncode == 0, listing.stderr
    assert len(listing.stdout.splitlines()) == 3
    uidl = run("alice:pw", "--login-options", "AUTH=PLAIN", "-X", "UIDL", url + "/")
    assert uidl.returncode == 0 and len(uidl.stdout.splitlines()) == 3, uidl.stderr
    msg = run("alice:pw", "--login-options", "AUTH=LOGIN", url + "/2")
    assert msg.returncode == 0 and b"Subject: second" in msg.stdout, msg.stderr
    cram = run("ann:apw", url + "/1")
    assert cram.returncode == 0 and b"Subject: first" in cram.stdout, cram.stderr
    apop = run("ann:apw", "--login-options", "AUTH=+APOP", url + "/1")
    assert apop.returncode == 0 and b"Subject: first" in apop.stdout, apop.stderr
    secure = run("alice:pw", "--login-options", "AUTH=PLAIN", "--ssl-reqd", "-k", url + "/1")
    assert secure.returncode == 0 and b"Subject: first" in secure.stdout, secure.stderr
    pop3s = run("alice:pw", "--login-options", "AUTH=PLAIN", "-k",
                f"pop3s://127.0.0.1:{pop.port(995)}/3")
    assert pop3s.returncode == 0 and b"Subject: third" in pop3s.stdout, pop3s.stderr
