"""fetchmail, a client nobody here wrote, pulling mail from gatehoused (issue 6): POP3, APOP and
IMAP, in clear and over TLS (995, 993), deleting what it fetched or keeping it as asked.

Each run gets its own rcfile, id file and FETCHMAILHOME under the test's tmp dir, and hands every
message to a file MDA (a small Python script writing one file per message), so nothing leaves the
test directory and nothing talks to a real SMTP server.
"""

import imaplib
import os
import shutil
import subprocess
import sys

import pytest

from cli_helpers import cli

pytestmark = pytest.mark.skipif(shutil.which("fetchmail") is None, reason="fetchmail not installed")

SINK = """import os, sys
out = sys.argv[1]
data = sys.stdin.buffer.read()
n = len(os.listdir(out))
with open(os.path.join(out, "%04d.eml" % n), "wb") as f:
    f.write(data)
"""


def message(i):
    return (f"From: sender{i}@example.test\r\nTo: bob@example.test\r\nSubject: fetch me {i}\r\n"
            f"Message-ID: <f{i}@example.test>\r\n\r\nbody {i}\r\n").encode()


@pytest.fixture
def fm(server, gatehouse_bin, tmp_path):
    """The server with `bob` (hashed password) and `cat` (clear password, for APOP)."""
    cli(gatehouse_bin, server, "CreateAccount", "bob", "{Password=pw;}", check=True)
    cli(gatehouse_bin, server, "CreateAccount", "cat", "{PasswordEncryption=clear;Password=cpw;}",
        check=True)
    (tmp_path / "sink.py").write_text(SINK)
    return server


def put(server, user, password, n):
    m = imaplib.IMAP4("127.0.0.1", server.port(143), timeout=10)
    m.login(user, password)
    for i in range(n):
        assert m.append("INBOX", None, None, message(i))[0] == "OK"
    m.logout()


def inbox_count(server, user, password):
    m = imaplib.IMAP4("127.0.0.1", server.port(143), timeout=10)
    m.login(user, password)
    typ, data = m.status("INBOX", "(MESSAGES)")
    m.logout()
    assert typ == "OK", data
    return int(data[0].rsplit(b" ", 1)[1].rstrip(b")"))


def fetchmail(server, tmp_path, proto, port, user, password, keep=False, tls="clear", run="run"):
    """Runs fetchmail once; returns (exit code, the messages delivered by this run)."""
    out = tmp_path / f"out-{run}"
    out.mkdir()
    home = tmp_path / "fmhome"
    home.mkdir(exist_ok=True)
    options = ["keep" if keep else "nokeep", "fetchall" if not keep else "no fetchall"]
    # fetchmail upgrades with STLS/STARTTLS whenever offered, unless told `sslproto ""`. The
    # server's certificate is self-signed; checking it is not what this test is about.
    options += {"clear": ['sslproto ""'], "starttls": ["no sslcertck"],
                "tls": ["ssl", "no sslcertck"]}[tls]
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no bouncemail\n"
        f"poll 127.0.0.1 service {server.port(port)} protocol {proto} timeout 20\n"
        f'  user "{user}" password "{password}"\n'
        f"  mda \"{sys.executable} {tmp_path / 'sink.py'} {out}\"\n"
        f"  {' '.join(options)}\n")
    rc.chmod(0o600)
    env = dict(os.environ, FETCHMAILHOME=str(home), HOME=str(home))
    proc = subprocess.run(
        ["fetchmail", "-f", str(rc), "--idfile", str(home / "ids"), "--pidfile", str(home / "pid"),
         "--nosyslog", "-v", "--nodetach"],
        capture_output=True, text=True, timeout=60, env=env)
    got = sorted(p.read_bytes() for p in out.iterdir())
    return proc.returncode, got, proc.stdout + proc.stderr


def subjects(msgs):
    return sorted(line for m in msgs for line in m.splitlines() if line.startswith(b"Subject:"))


@pytest.mark.parametrize("proto,port,tls", [
    ("POP3", 110, "clear"),
    ("POP3", 110, "starttls"),
    ("POP3", 995, "tls"),
    ("IMAP", 143, "clear"),
    ("IMAP", 143, "starttls"),
    ("IMAP", 993, "tls"),
])
def test_fetchmail_fetches_and_deletes(fm, tmp_path, proto, port, tls):
    put(fm, "bob", "pw", 3)
    code, got, log = fetchmail(fm, tmp_path, proto, port, "bob", "pw", tls=tls)
    assert code == 0, log
    upgraded = "POP3> STLS" in log or "STARTTLS\n" in log
    assert upgraded == (tls == "starttls"), log
    assert subjects(got) == [b"Subject: fetch me %d" % i for i in range(3)], log
    assert all(b"body" in m for m in got)
    assert inbox_count(fm, "bob", "pw") == 0
    # Nothing left: fetchmail says so with exit code 1.
    code, got, log = fetchmail(fm, tmp_path, proto, port, "bob", "pw", tls=tls, run="again")
    assert code == 1 and got == [], log


@pytest.mark.parametrize("proto,port", [("POP3", 110), ("IMAP", 143)])
def test_fetchmail_keep_leaves_mail_and_fetches_only_new(fm, tmp_path, proto, port):
    put(fm, "bob", "pw", 2)
    code, got, log = fetchmail(fm, tmp_path, proto, port, "bob", "pw", keep=True)
    assert code == 0 and len(got) == 2, log
    assert inbox_count(fm, "bob", "pw") == 2
    # Kept messages are not fetched again (POP3: UIDL in the id file; IMAP: \Seen); a new one is.
    put(fm, "bob", "pw", 1)
    code, got, log = fetchmail(fm, tmp_path, proto, port, "bob", "pw", keep=True, run="second")
    assert code == 0, log
    assert subjects(got) == [b"Subject: fetch me 0"] and len(got) == 1, log
    assert inbox_count(fm, "bob", "pw") == 3


def test_fetchmail_apop(fm, tmp_path):
    put(fm, "cat", "cpw", 2)
    code, got, log = fetchmail(fm, tmp_path, "APOP", 110, "cat", "cpw")
    assert code == 0 and len(got) == 2, log
    assert "APOP" in log
    assert inbox_count(fm, "cat", "cpw") == 0
    # A wrong password is refused (fetchmail's exit code 3: authentication failed).
    put(fm, "cat", "cpw", 1)
    code, got, log = fetchmail(fm, tmp_path, "APOP", 110, "cat", "wrong", run="bad")
    assert code == 3 and got == [], log
    assert inbox_count(fm, "cat", "cpw") == 1
