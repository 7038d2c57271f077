"""RPOP (issue 7 item 2, guide.txt:12327-12621): gatehoused polls Dovecot's POP3 server, started
here on 127.0.0.1 with a private configuration, into local accounts.

- a user's remote account with Leave: two polls, no duplicates, the remote keeps its mail;
- delete mode with APOP: the remote mailbox is emptied, Dovecot logs an APOP login;
- STLS where Dovecot offers it (a self-signed certificate);
- a Unified Domain-Wide Account: distribution by X-Real-To, by To/Cc, else to the postmaster;
- polls only inside the TCP Activity Schedule and at most once per Pause (the test clock).

Dovecot fills its Maildirs from files written here. Skipped only when Dovecot is not installed
(tests/run-all.sh installs dovecot-pop3d)."""

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from cli_helpers import cli
from mail_helpers import WAIT, messages_with

DOVECOT = "/usr/sbin/dovecot"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Dovecot:
    """Dovecot's POP3 server on 127.0.0.1, everything under one temporary directory."""

    def __init__(self, users, tls=False):
        if os.geteuid() == 0:
            # Dovecot refuses to serve mail as root: the mail and its processes are nobody's.
            ent = pwd.getpwnam("nobody")
            self.uid, self.gid = ent.pw_uid, ent.pw_gid
            user, group = "nobody", grp.getgrgid(ent.pw_gid).gr_name
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
            user, group = pwd.getpwuid(self.uid).pw_name, grp.getgrgid(self.gid).gr_name
        # Not under pytest's tmp_path: its parents are private to root, and nobody must enter.
        self.dir = Path(tempfile.mkdtemp(prefix="gh-dovecot-"))
        self.dir.chmod(0o755)
        self.port = free_port()
        self.log = self.dir / "dovecot.log"
        lines = []
        for name, password in users.items():
            home = self.dir / "mail" / name
            for sub in ("new", "cur", "tmp"):
                (home / "Maildir" / sub).mkdir(parents=True)
            lines.append(f"{name}:{{PLAIN}}{password}:{self.uid}:{self.gid}::{home}")
        self._chown(self.dir / "mail")
        (self.dir / "users").write_text("\n".join(lines) + "\n")
        for d in ("base", "state"):
            (self.dir / d).mkdir()
        ssl = "ssl = no"
        if tls:
            # STLS offered, with a self-signed certificate.
            cert, key = self.dir / "cert.pem", self.dir / "key.pem"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=pop.isp.test"],
                           check=True, capture_output=True)
            ssl = f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}"
        self.conf = self.dir / "dovecot.conf"
        self.conf.write_text(f"""
protocols = pop3
listen = 127.0.0.1
base_dir = {self.dir}/base
state_dir = {self.dir}/state
log_path = {self.log}
info_log_path = {self.log}
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain apop
default_internal_user = {user}
default_internal_group = {group}
default_login_user = {user}
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {self.dir}/users
}}
userdb {{
  driver = passwd-file
  args = {self.dir}/users
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    port = {self.port}
  }}
}}
service anvil {{
  chroot =
}}
""")
        # The master daemonizes; its children must not hold a pipe of ours open.
        with open(self.dir / "start.log", "wb") as out:
            started = subprocess.run([DOVECOT, "-c", str(self.conf)], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=out, timeout=30)
        if started.returncode != 0:
            text = (self.dir / "start.log").read_text(errors="replace")
            shutil.rmtree(self.dir, ignore_errors=True)
            pytest.fail(f"Dovecot did not start: {text}")
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"Dovecot did not listen on {self.port}: {self.log_text()}")
                time.sleep(0.1)

    def _chown(self, path):
        if os.geteuid() == 0:
            for root, dirs, files in os.walk(path):
                os.chown(root, self.uid, self.gid)
                for f in files:
                    os.chown(os.path.join(root, f), self.uid, self.gid)

    def deliver(self, user, text):
        """Puts a message in the user's Maildir, as a local delivery agent would."""
        maildir = self.dir / "mail" / user / "Maildir"
        name = f"{time.time_ns()}.{uuid.uuid4().hex}.gh"
        tmp = maildir / "tmp" / name
        tmp.write_text(text)
        self._chown(tmp)
        os.rename(tmp, maildir / "new" / name)

    def count(self, user):
        maildir = self.dir / "mail" / user / "Maildir"
        return sum(1 for sub in ("new", "cur") for p in (maildir / sub).iterdir() if p.is_file())

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def logins(self, user):
        return [l for l in self.log_text().splitlines() if f"Login: user=<{user}>" in l]

    def stop(self):
        pid_file = self.dir / "base" / "master.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)


def start_dovecot(tls=False):
    if not os.path.exists(DOVECOT) or not os.path.exists("/usr/lib/dovecot/pop3"):
        pytest.skip("Dovecot's POP3 server is not installed (tests/run-all.sh installs dovecot-pop3d)")
    return Dovecot({"alice": "secret", "office": "unified-pw"}, tls=tls)


@pytest.fixture
def dovecot():
    d = start_dovecot()
    yield d
    d.stop()


@pytest.fixture
def dovecot_tls():
    d = start_dovecot(tls=True)
    yield d
    d.stop()


def message(marker, to="ann@example.test", extra=""):
    return (f"Return-Path: <sender@far.test>\n{extra}From: Sender <sender@far.test>\nTo: {to}\n"
            f"Subject: rpop {marker}\n\nbody {marker}\n.a line starting with a dot\n")


def account_rows(dovecot, **kv):
    row = {"PollEvery": "1h", "Account": "alice", "Host": f"127.0.0.1:{dovecot.port}",
           "Password": "secret", "Leave": "Yes", "APOP": "No", **kv}
    return "({" + "".join(f'{k}="{v}";' for k, v in row.items()) + "})"


def wait_for(pred, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, what()
        time.sleep(0.1)


def polled(ok, dovecot, after=None):
    """Waits until the last session with Dovecot is recorded (and newer than `after`); returns it."""
    key = f"RPOP 127.0.0.1:{dovecot.port}"
    state = {}

    def done():
        s = ok("GetServerStatus", json=True).get("RemoteServers", {}).get(key)
        state["s"] = s
        return s is not None and s != after
    wait_for(done, lambda: f"no poll recorded: {state} {dovecot.log_text()}")
    return state["s"]


def setup(ok):
    ok("UpdateModule", "RPOP", "{AllowSelfPoll=Yes;}")
    for name in ("ann", "bob"):
        ok("CreateAccount", name)


def test_leave_on_server_polls_twice_without_duplicates(server, gatehouse_bin, dovecot):
    ok = lambda *a, **k: cli(gatehouse_bin, server, *a, check=True, **k)
    setup(ok)
    marker = uuid.uuid4().hex
    for i in range(2):
        dovecot.deliver("alice", message(f"{marker}-{i}"))
    ok("SetAccountRPOP", "ann", account_rows(dovecot))
    rows = ok("GetAccountRPOP", "ann", json=True)
    assert rows[0]["Account"] == "alice" and rows[0]["Leave"] == "Yes", rows
    # Never polled, so due: the schedule watcher polls it (no schedule: no restriction).
    first = polled(ok, dovecot)
    assert first["Result"] == "OK" and first["Messages"] == "2", first
    assert len(messages_with(server, "ann", marker)) == 2
    # Second poll, asked for (Poll Every is an hour): nothing new, nothing again.
    # Only the actions that ran: no backup server (SendWakeupsTo), so no ETRN/ATRN.
    assert ok("WakeUpNow", json=True) == ["queue", "RPOP"]
    second = polled(ok, dovecot, after=first)
    assert second["Messages"] == "0", second
    # A third message: only it comes.
    dovecot.deliver("alice", message(f"{marker}-2"))
    ok("WakeUpNow")
    third = polled(ok, dovecot, after=second)
    assert third["Messages"] == "1", third
    got = messages_with(server, "ann", marker)
    assert sorted(m["Subject"] for m in got) == [f"rpop {marker}-{i}" for i in range(3)], got
    assert "sender@far.test" in got[0]["Return-Path"]
    assert dovecot.count("alice") == 3, "Leave keeps the mail on the server"
    assert ok("GetAccountRPOP", "ann", json=True)[0]["Last"].startswith("20"), "the time of the last poll"
    assert any("1 message(s) retrieved" in r["Text"] for r in ok("ReadLog", "TAG", "RPOP", json=True))


def test_delete_mode_with_apop_empties_the_remote(server, gatehouse_bin, dovecot):
    ok = lambda *a, **k: cli(gatehouse_bin, server, *a, check=True, **k)
    setup(ok)
    marker = uuid.uuid4().hex
    for i in range(3):
        dovecot.deliver("alice", message(f"{marker}-{i}"))
    ok("SetAccountRPOP", "ann", account_rows(dovecot, Leave="No", APOP="Yes"))
    s = polled(ok, dovecot)
    assert s["Result"] == "OK" and s["Messages"] == "3", s
    assert len(messages_with(server, "ann", marker)) == 3
    assert dovecot.count("alice") == 0, "delete mode empties the remote mailbox"
    assert any("method=APOP" in l for l in dovecot.logins("alice")), dovecot.log_text()


def test_stls_where_the_server_offers_it(server, gatehouse_bin, dovecot_tls):
    ok = lambda *a, **k: cli(gatehouse_bin, server, *a, check=True, **k)
    setup(ok)
    marker = uuid.uuid4().hex
    dovecot_tls.deliver("alice", message(marker))
    ok("SetAccountRPOP", "ann", account_rows(dovecot_tls, Leave="No"))
    s = polled(ok, dovecot_tls)
    assert s["Result"] == "OK" and s["Messages"] == "1", s
    assert len(messages_with(server, "ann", marker)) == 1
    logins = dovecot_tls.logins("alice")
    assert logins and all("TLS" in l for l in logins), dovecot_tls.log_text()


def test_wrong_password_is_reported_in_last(server, gatehouse_bin, dovecot):
    ok = lambda *a, **k: cli(gatehouse_bin, server, *a, check=True, **k)
    setup(ok)
    ok("SetAccountRPOP", "ann", account_rows(dovecot, Password="wrong"))
    s = polled(ok, dovecot)
    assert s["Result"].startswith("error:"), s
    wait_for(lambda: ok("GetAccountRPOP", "ann", json=True)[0].get("Last", "").startswith("error:"),
             lambda: ok("GetAccountRPOP", "ann", json=True))


def test_unified_account_distribution(server, gatehouse_bin, dovecot):
    ok = lambda *a, **k: cli(gatehouse_bin, server, *a, check=True, **k)
    setup(ok)
    marker = uuid.uuid4().hex
    # By the special header (not by To), by To/Cc (the outside address ignored), else the postmaster.
    dovecot.deliver("office", message(f"{marker}-xrealto", to="ann@example.test",
                                      extra="X-Real-To: bob@example.test\n"))
    dovecot.deliver("office", message(f"{marker}-to", to="ann@example.test, x@far.test"))
    dovecot.deliver("office", message(f"{marker}-none", to="nobody@far.test"))
    row = (f'({{PollEvery=1h; Account=office; Host="127.0.0.1:{dovecot.port}"; Password="unified-pw";'
           ' Leave=No; APOP=No;})')
    ok("UpdateModule", "RPOP", "{AllowSelfPoll=Yes; UnifiedAccounts=" + row + ";}")
    s = polled(ok, dovecot)
    assert s["Messages"] == "3", s
    bob = messages_with(server, "bob", f"{marker}-xrealto")
    assert len(bob) == 1 and bob[0]["X-Real-To"] is None, "the special header is removed"
    assert len(messages_with(server, "ann", f"{marker}-to")) == 1
    assert messages_with(server, "ann", f"{marker}-xrealto", timeout=1) == []
    assert len(messages_with(server, "postmaster", f"{marker}-none")) == 1
    assert dovecot.count("office") == 0


def test_polls_only_inside_the_schedule_once_per_pause(server_factory, gatehouse_bin, dovecot):
    server = server_factory(extra_args=["--test-clock", "2026-11-23T03:00:00+01:00"])
    ok = lambda *a, **k: cli(gatehouse_bin, server, *a, check=True, **k)
    setup(ok)
    ok("SetDialupSchedule", '({Days="Every Day"; When="08:00-12:00"; Pause=3600;})')
    ok("SetAccountRPOP", "ann", account_rows(dovecot, PollEvery="1m"))
    time.sleep(3)
    assert dovecot.logins("alice") == [], "polled while the schedule keeps the link closed"
    r = cli(gatehouse_bin, server, "WakeUpNow")
    assert r.returncode == 1 and "closed until" in r.stderr
    ok("SetTestClock", "2026-11-23T08:00:30+01:00")
    first = polled(ok, dovecot)
    assert len(dovecot.logins("alice")) == 1
    # Poll Every has run out, the Pause has not: no new session.
    ok("SetTestClock", "2026-11-23T08:05:00+01:00")
    time.sleep(3)
    assert len(dovecot.logins("alice")) == 1, "polled again within the Pause"
    ok("SetTestClock", "2026-11-23T09:01:00+01:00")
    polled(ok, dovecot, after=first)
    assert len(dovecot.logins("alice")) == 2
