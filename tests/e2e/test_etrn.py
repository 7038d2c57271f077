"""Dial-up SMTP services (issues 5 and 7; guide.txt:11611-11786, RFC 1985, RFC 2645).

Serving side: mail for a domain in Hold Mail for Domains waits in the queue with no connection
(a Python sink asserts it) until `fetchmail -p ETRN` releases it to its route, or `fetchmail -p
ODMR` takes it over the same connection (ATRN, port 366) and relays it to its smtphost (the sink).
A message to `client.test-wakeup@<main domain>` releases it too. TURN is refused, ETRN for a local
or unheld domain answers 459/251, ATRN needs AUTH.

Client side: two gatehoused instances play provider and office. With ATRN the office connects to
the provider's port 366 when its TCP Activity Schedule window opens and receives the held mail on
that connection; with ETRN the provider connects back to the office's SMTP port through a Router
record. Outside the window no wake-up is sent (a sink asserts no connection); when it opens one is,
and then one per `SendWakeupsEvery`, never two within the window's Pause. Time is the server's test
clock (`gatehoused --test-clock`, moved with `SetTestClock`), so no test waits for a real window.
"""

import smtplib
import subprocess
import time
import uuid

from cli_helpers import cli
from mail_helpers import WAIT, drop
from test_dialup import MORNING, NIGHT, WINDOW
from test_smtp_out import Sink, got, send_out, smtp_settings

ODMR = 366


def ok(gatehouse_bin, server, *args, **kw):
    return cli(gatehouse_bin, server, *args, check=True, **kw)


def wait_held(gatehouse_bin, server, n=1, timeout=WAIT):
    """Waits until `n` queued messages say they are held for ETRN/ATRN."""
    deadline = time.monotonic() + timeout
    while True:
        q = ok(gatehouse_bin, server, "ListQueue", json=True) or []
        if sum("until ETRN or ATRN" in m["State"] for m in q) >= n:
            return q
        assert time.monotonic() < deadline, f"not held: {q}"
        time.sleep(0.1)


def wait_empty_queue(gatehouse_bin, server, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while ok(gatehouse_bin, server, "ListQueue", json=True):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def mailbox_has(server, account, marker, timeout=WAIT):
    """Whether `account`'s INBOX.mbox (any domain) holds `marker`, waiting up to `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for box in server.base.glob(f"**/{account}.macnt/INBOX.mbox"):
            if marker in box.read_text(errors="replace"):
                return True
        time.sleep(0.2)
    return False


def remote(gatehouse_bin, server, key, timeout=WAIT):
    """The `RemoteServers` entry `key` of GetServerStatus, waiting until it is there."""
    deadline = time.monotonic() + timeout
    while True:
        status = ok(gatehouse_bin, server, "GetServerStatus", json=True)
        entry = status.get("RemoteServers", {}).get(key)
        if entry:
            return entry
        assert time.monotonic() < deadline, f"no {key}: {status.get('RemoteServers')}"
        time.sleep(0.2)


def fetchmail(tmp_path, rc_text):
    rc = tmp_path / "fetchmailrc"
    rc.write_text(rc_text)
    rc.chmod(0o600)
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "FETCHMAILHOME": str(tmp_path)}
    return subprocess.run(["fetchmail", "-v", "--nodetach", "--nosyslog", "-f", str(rc)],
                          capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)


def test_fetchmail_etrn_releases_held_mail(server, gatehouse_bin, tmp_path):
    sink = Sink()
    try:
        # The guide's recipe (guide.txt:21898-21920): the client domain routed to its host,
        # whose queue is held.
        ok(gatehouse_bin, server, "SetRouterTable", f"client.test = [127.0.0.1:{sink.port}]")
        smtp_settings(gatehouse_bin, server, HoldMailForDomains="client.test", SendTLS="Never")
        marker = uuid.uuid4().hex
        send_out(server, marker, to="someone@client.test")
        wait_held(gatehouse_bin, server)
        assert not sink.wait(lambda s: s.connections > 0, timeout=3), "held mail was sent"
        run = fetchmail(tmp_path, f"poll 127.0.0.1 proto ETRN port {server.port(25)} "
                                  "fetchdomains client.test\n")
        out = run.stdout + run.stderr
        assert "ETRN client.test" in out, out
        assert sink.wait(got(sink, marker)), f"not released by ETRN: {sink.commands}\n{out}"
        assert wait_empty_queue(gatehouse_bin, server)
        records = ok(gatehouse_bin, server, "ReadLog", "TAG", "SMTP", json=True)
        assert any("ETRN client.test" in r["Text"] for r in records), records
    finally:
        sink.close()


def test_fetchmail_odmr_takes_held_mail_over_the_same_connection(server, gatehouse_bin, tmp_path):
    sink = Sink()
    try:
        # The guide's ATRN customer (guide.txt:21985-21997): an account named as the domain in
        # the Main Domain, the domain held.
        # fetchmail's ODMR client always says AUTH CRAM-MD5: the password is kept recoverable.
        ok(gatehouse_bin, server, "CreateAccount", "client.test",
           "{PasswordEncryption=clear;Password=odmr-pw;}")
        smtp_settings(gatehouse_bin, server, HoldMailForDomains="client.test")
        marker = uuid.uuid4().hex
        send_out(server, marker, to="someone@client.test")
        wait_held(gatehouse_bin, server)
        run = fetchmail(tmp_path, (
            f"poll 127.0.0.1 proto ODMR port {server.port(ODMR)}\n"
            f'  user "client.test" password "odmr-pw" fetchdomains client.test\n'
            f"  smtphost 127.0.0.1/{sink.port}\n"))
        out = run.stdout + run.stderr
        assert sink.wait(got(sink, marker)), f"ODMR did not bring the mail: {sink.commands}\n{out}"
        m = [m for m in sink.messages if marker in m["data"]][0]
        assert m["rcpts"] == ["RCPT TO:<someone@client.test>"], m
        assert wait_empty_queue(gatehouse_bin, server)
    finally:
        sink.close()


def test_wakeup_email_releases_held_mail(server, gatehouse_bin):
    sink = Sink()
    try:
        ok(gatehouse_bin, server, "SetRouterTable",
           f"client.test = client.test@127.0.0.1.{sink.port}.smtp")
        smtp_settings(gatehouse_bin, server, HoldMailForDomains="client.test", SendTLS="Never")
        marker = uuid.uuid4().hex
        send_out(server, marker, to="someone@client.test")
        wait_held(gatehouse_bin, server)
        # guide.txt:11733-11740: any message to <domain>-wakeup@<main domain> releases it.
        with smtplib.SMTP("127.0.0.1", server.port(25), timeout=10) as s:
            s.sendmail("admin@client.test", [f"client.test-wakeup@{server.main_domain}"],
                       "Subject: wake up\r\n\r\nplease\r\n")
        assert sink.wait(got(sink, marker)), f"not released by the wake-up e-mail: {sink.commands}"
        m = [m for m in sink.messages if marker in m["data"]][0]
        assert m["rcpts"] == ["RCPT TO:<someone@client.test>"], m
        assert not any("please" in m["data"] for m in sink.messages)
    finally:
        sink.close()


def test_refusals(server, gatehouse_bin):
    with smtplib.SMTP("127.0.0.1", server.port(25), timeout=10) as s:
        s.ehlo("office.test")
        assert s.has_extn("etrn") and s.has_extn("atrn"), s.esmtp_features
        # RFC 2645 §1: TURN gives mail to whoever asks.
        assert s.docmd("TURN")[0] == 502
        # The main domain is local: no node to release; a remote domain with nothing waiting.
        assert s.docmd("ETRN", server.main_domain)[0] == 459
        assert s.docmd("ETRN", "unheld.test")[0] == 251
        assert s.docmd("ETRN", "bad/name")[0] == 501
        # ATRN needs AUTH (RFC 2645 §4).
        assert s.docmd("ATRN", "client.test")[0] == 530
    with smtplib.SMTP("127.0.0.1", server.port(ODMR), timeout=10) as s:
        s.ehlo("office.test")
        assert s.has_extn("auth") and s.has_extn("atrn")
        assert s.docmd("MAIL", "FROM:<a@b.test>")[0] == 530
        # An account that is not the domain's may not take its mail; nor a domain not held.
        s.login("postmaster", server.password)
        assert s.docmd("ATRN", "client.test")[0] == 450
        assert s.docmd("ATRN", "a.test,b.test")[0] == 501


def office_and_provider(server_factory, gatehouse_bin):
    provider = server_factory()
    office = server_factory(extra_args=["--test-clock", NIGHT])
    ok(gatehouse_bin, office, "CreateDomain", "office.test")
    ok(gatehouse_bin, office, "CreateAccount", "user@office.test", "{Password=user-pw;}")
    return provider, office


def test_atrn_between_two_servers_when_the_window_opens(server_factory, gatehouse_bin):
    provider, office = office_and_provider(server_factory, gatehouse_bin)
    ok(gatehouse_bin, provider, "CreateAccount", "office.test", "{Password=atrn-pw;}")
    smtp_settings(gatehouse_bin, provider, HoldMailForDomains="office.test")
    ok(gatehouse_bin, office, "SetDialupSchedule", WINDOW)
    smtp_settings(gatehouse_bin, office, SendWakeupsTo=f"127.0.0.1:{provider.port(ODMR)}",
                  UseATRN="Yes", ATRNLoginName="office.test", ATRNPassword="atrn-pw",
                  WakeupDomains="office.test")
    marker = uuid.uuid4().hex
    send_out(provider, marker, to="user@office.test")
    wait_held(gatehouse_bin, provider)
    # Closed: Wake Up Now says until when, and nothing is sent.
    woken = cli(gatehouse_bin, office, "WakeUpNow")
    assert woken.returncode == 1 and "closed until" in woken.stderr
    assert not mailbox_has(office, "user", marker, timeout=6)
    assert len(ok(gatehouse_bin, provider, "ListQueue", json=True)) == 1
    # The clock reaches the window: the office sends AUTH and ATRN and receives on the same
    # connection.
    ok(gatehouse_bin, office, "SetTestClock", MORNING)
    assert mailbox_has(office, "user", marker), office.log[-3000:] + provider.log[-3000:]
    assert wait_empty_queue(gatehouse_bin, provider)
    records = ok(gatehouse_bin, office, "ReadLog", "TAG", "SMTPW", json=True)
    assert any("ATRN office.test" in r["Text"] for r in records), records
    # RemoteServers: the provider's turned-around delivery to the customer's domain, and the
    # office's wake-up session with its backup.
    delivery = remote(gatehouse_bin, provider, "SMTP office.test")
    assert delivery["Result"] == "OK" and delivery["Messages"] == "1", delivery
    wakeup = remote(gatehouse_bin, office, "ATRN 127.0.0.1")
    assert wakeup["Result"] == "OK" and wakeup["Module"] == "ATRN", wakeup


def test_etrn_between_two_servers(server_factory, gatehouse_bin):
    provider, office = office_and_provider(server_factory, gatehouse_bin)
    # The provider backs the office up: its mail goes to the office's SMTP port when released.
    # guide.txt:11963: `host.port.smtp` keeps the address (`[ip:port]` would rewrite it).
    ok(gatehouse_bin, provider, "SetRouterTable",
       f"office.test = office.test@127.0.0.1.{office.port(25)}.smtp")
    smtp_settings(gatehouse_bin, provider, HoldMailForDomains="office.test", SendTLS="Never")
    smtp_settings(gatehouse_bin, office, SendWakeupsTo=f"127.0.0.1:{provider.port(25)}",
                  WakeupDomains="office.test")
    marker = uuid.uuid4().hex
    send_out(provider, marker, to="user@office.test")
    wait_held(gatehouse_bin, provider)
    assert not mailbox_has(office, "user", marker, timeout=3)
    assert "ETRN/ATRN" in ok(gatehouse_bin, office, "WakeUpNow", json=True)
    assert mailbox_has(office, "user", marker), office.log[-3000:] + provider.log[-3000:]
    assert wait_empty_queue(gatehouse_bin, provider)
    records = ok(gatehouse_bin, office, "ReadLog", "TAG", "SMTPW", json=True)
    assert any("ETRN office.test: 253" in r["Text"] for r in records), records
    wakeup = remote(gatehouse_bin, office, "ETRN 127.0.0.1")
    assert wakeup["Result"] == "OK" and wakeup["Messages"] == "0", wakeup


def test_wakeups_only_inside_the_window_and_once_per_pause(server_factory, gatehouse_bin):
    server = server_factory(extra_args=["--test-clock", NIGHT])
    sink = Sink()
    try:
        ok(gatehouse_bin, server, "SetDialupSchedule",
           '({Days="Every Day"; When="08:00-09:00"; Pause=600;})')
        smtp_settings(gatehouse_bin, server, SendWakeupsTo=f"127.0.0.1:{sink.port}",
                      SendWakeupsEvery="60", WakeupDomains="office.test", SendTLS="Never")
        assert not sink.wait(lambda s: s.connections > 0, timeout=3), "a wake-up while closed"
        # The window opens: one wake-up.
        ok(gatehouse_bin, server, "SetTestClock", MORNING)
        assert sink.wait(lambda s: s.commands.count("ETRN office.test") == 1), sink.commands
        # SendWakeupsEvery (60 s) has run out, the Pause (600 s) has not: nothing more.
        ok(gatehouse_bin, server, "SetTestClock", "2026-11-23T08:02:00+01:00")
        assert not sink.wait(lambda s: s.connections > 1, timeout=3), sink.commands
        ok(gatehouse_bin, server, "SetTestClock", "2026-11-23T08:11:00+01:00")
        assert sink.wait(lambda s: s.commands.count("ETRN office.test") == 2), sink.commands
        # Closed again: nothing, however long it has been.
        ok(gatehouse_bin, server, "SetTestClock", "2026-11-23T10:30:00+01:00")
        assert not sink.wait(lambda s: s.connections > 2, timeout=3), sink.commands
    finally:
        sink.close()
