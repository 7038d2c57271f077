"""The SMTP module, receiving side (issue 5 items 1-2): smtplib and swaks against a real gatehoused.

Needs the whole mail path in gatehoused: the SMTP listener wired to the Enqueuer and the Router,
and Local Delivery, so that a message to a local account lands in its INBOX.mbox. Only 127.0.0.1
is contacted; it is not a Client IP Address unless a test makes it one.
"""

import mailbox
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from cli_helpers import cli

USER = "user1"
PASSWORD = "user1-secret"


@pytest.fixture
def smtp_server(server, gatehouse_bin):
    """A server with the account user1 (password PASSWORD, stored clear so CRAM-MD5 works, and
    CRAM-MD5 advertised as an admin with clear passwords would set it)."""
    cli(gatehouse_bin, server, "CreateAccount", USER,
        f"{{PasswordEncryption=clear;Password={PASSWORD};}}", check=True)
    cli(gatehouse_bin, server, "UpdateModule", "LoginSecurity", "{AdvertiseSecureSASL=YES;}", check=True)
    server.cli = lambda *args, **kw: cli(gatehouse_bin, server, *args, check=True, **kw)
    return server


def addr(server, name=USER):
    return f"{name}@{server.main_domain}"


def inbox(server, name=USER):
    return server.base / "Accounts" / f"{name}.macnt" / "INBOX.mbox"


def wait_for_message(server, marker, name=USER, timeout=15.0):
    """The message in the account's INBOX whose Subject is `marker` (delivery is asynchronous)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = inbox(server, name)
        if path.exists():
            for msg in mailbox.mbox(str(path)):
                if msg["Subject"] == marker:
                    return msg
        time.sleep(0.2)
    raise AssertionError(f"no message {marker!r} in {inbox(server, name)}; log:\n{server.log[-4000:]}")


def message(server, subject, size=0):
    body = ("x" * 70 + "\r\n") * (size // 72 + 1) if size else "hello\r\n"
    return f"From: <a@far.example>\r\nTo: <{addr(server)}>\r\nSubject: {subject}\r\n\r\n{body}"


def tls_context():
    ctx = ssl.create_default_context()
    # The server's first-start certificate is self-signed.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_ehlo_lists_the_extensions(smtp_server):
    with smtplib.SMTP("127.0.0.1", smtp_server.port(25), timeout=10) as s:
        code, _ = s.ehlo("client.test")
        assert code == 250
        for ext in ("size", "pipelining", "8bitmime", "dsn", "enhancedstatuscodes", "starttls", "auth"):
            assert s.has_extn(ext), ext
        assert "CRAM-MD5" in s.esmtp_features["auth"]
        assert s.verify("user1")[0] == 252
        assert s.docmd("TURN")[0] == 502


def test_delivery_into_the_inbox_with_a_received_header(smtp_server):
    with smtplib.SMTP("127.0.0.1", smtp_server.port(25), timeout=10) as s:
        refused = s.sendmail("a@far.example", [addr(smtp_server)], message(smtp_server, "plain-1"),
                             mail_options=["BODY=8BITMIME"], rcpt_options=["NOTIFY=FAILURE"])
        assert refused == {}
    msg = wait_for_message(smtp_server, "plain-1")
    received = msg.get_all("Received")
    assert any("with ESMTP" in r and "127.0.0.1" in r for r in received), received


def test_unknown_user_is_refused(smtp_server):
    with smtplib.SMTP("127.0.0.1", smtp_server.port(25), timeout=10) as s:
        s.ehlo()
        s.mail("a@far.example")
        code, text = s.rcpt(addr(smtp_server, "nosuchuser"))
        assert code == 550, text


def test_relay_refused_for_a_non_client_without_auth(smtp_server):
    with smtplib.SMTP("127.0.0.1", smtp_server.port(25), timeout=10) as s:
        s.ehlo()
        s.mail("a@far.example")
        code, text = s.rcpt("b@elsewhere.example")
        assert code == 550 and b"5.7.1" in text, (code, text)
        # A local Return-Path gets a temporary refusal: "authenticate first" (guide.txt:3300-3312).
        s.rset()
        s.mail(addr(smtp_server))
        assert s.rcpt("b@elsewhere.example")[0] == 450
    # Once 127.0.0.1 is a Client IP Address, it may relay.
    smtp_server.cli("SetClientIPs", "127.0.0.1")
    with smtplib.SMTP("127.0.0.1", smtp_server.port(25), timeout=10) as s:
        s.ehlo()
        s.mail("a@far.example")
        assert s.rcpt("b@elsewhere.example")[0] == 250
        s.rset()


def test_auth_allows_relaying(smtp_server):
    with smtplib.SMTP("127.0.0.1", smtp_server.port(25), timeout=10) as s:
        s.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login(USER, "wrong")
        s.login(USER, PASSWORD)
        s.mail(addr(smtp_server))
        assert s.rcpt("b@elsewhere.example")[0] == 250
        s.rset()


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_each_auth_mechanism(smtp_server, mech):
    with smtplib.SMTP("127.0.0.1", smtp_server.port(25), timeout=10) as s:
        s.ehlo()
        s.user, s.password = USER, PASSWORD
        method = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login, "CRAM-MD5": s.auth_cram_md5}[mech]
        code, _ = s.auth(mech, method)
        assert code == 235


def test_starttls_then_auth_and_delivery(smtp_server):
    with smtplib.SMTP("127.0.0.1", smtp_server.port(25), timeout=10) as s:
        s.ehlo()
        s.starttls(context=tls_context())
        s.ehlo()
        assert not s.has_extn("starttls")
        s.login(USER, PASSWORD)
        s.sendmail(addr(smtp_server), [addr(smtp_server)], message(smtp_server, "tls-1"))
    msg = wait_for_message(smtp_server, "tls-1")
    assert any("ESMTPSA" in r for r in msg.get_all("Received"))


def test_starttls_discards_pipelined_plaintext(smtp_server):
    """RFC 3207 §4.2 (CVE-2011-0411): a command sent with STARTTLS must not run after the handshake."""
    with socket.create_connection(("127.0.0.1", smtp_server.port(25)), timeout=10) as sock:
        f = sock.makefile("rb")
        assert f.readline().startswith(b"220")
        sock.sendall(b"EHLO a\r\n")
        while f.readline()[3:4] == b"-":
            pass
        sock.sendall(b"STARTTLS\r\nNOOP injected\r\n")
        assert f.readline().startswith(b"220")
        with tls_context().wrap_socket(sock) as tls:
            tls.sendall(b"EHLO b\r\n")
            first = tls.recv(4096)
            assert first.startswith(b"250-"), first


def test_port_465_is_tls_on_connect(smtp_server):
    with smtplib.SMTP_SSL("127.0.0.1", smtp_server.port(465), timeout=10, context=tls_context()) as s:
        s.ehlo()
        assert not s.has_extn("starttls")
        s.sendmail("a@far.example", [addr(smtp_server)], message(smtp_server, "ssl-465"))
    msg = wait_for_message(smtp_server, "ssl-465")
    assert any("ESMTPS" in r for r in msg.get_all("Received"))


def test_port_587_requires_auth(smtp_server):
    with smtplib.SMTP("127.0.0.1", smtp_server.port(587), timeout=10) as s:
        s.ehlo()
        code, text = s.mail(addr(smtp_server))
        assert code == 530, text
        s.starttls(context=tls_context())
        s.ehlo()
        s.login(USER, PASSWORD)
        s.sendmail(addr(smtp_server), [addr(smtp_server)], message(smtp_server, "sub-587"))
    wait_for_message(smtp_server, "sub-587")


def test_size_limits(smtp_server):
    smtp_server.cli("UpdateModule", "SMTP", "{MessageSizeLimit=10K;}")
    with smtplib.SMTP("127.0.0.1", smtp_server.port(25), timeout=10) as s:
        s.ehlo()
        assert s.esmtp_features["size"] == "10240"
        code, _ = s.mail("a@far.example", ["SIZE=20000"])
        assert code == 552
        # Undeclared, but too large once read: refused after DATA, session still usable.
        s.mail("a@far.example")
        s.rcpt(addr(smtp_server))
        code, _ = s.data(message(smtp_server, "big", size=20000))
        assert code == 552
        assert s.noop()[0] == 250
        s.sendmail("a@far.example", [addr(smtp_server)], message(smtp_server, "small", size=2000))
    wait_for_message(smtp_server, "small")


def test_pipelining_and_long_lines(smtp_server):
    with socket.create_connection(("127.0.0.1", smtp_server.port(25)), timeout=10) as sock:
        f = sock.makefile("rb")

        def reply():
            lines = []
            while True:
                line = f.readline().decode()
                lines.append(line)
                if line[3:4] != "-":
                    return "".join(lines)

        assert reply().startswith("220")
        sock.sendall(b"EHLO pipe.test\r\n")
        assert reply().startswith("250")
        sock.sendall(b"NOOP " + b"y" * 3000 + b"\r\n")
        assert reply().startswith("500")
        rcpt = addr(smtp_server).encode()
        sock.sendall(b"MAIL FROM:<a@far.example>\r\nRCPT TO:<" + rcpt + b">\r\n"
                     b"RCPT TO:<nosuch@" + smtp_server.main_domain.encode() + b">\r\nDATA\r\n")
        got = [reply()[:3] for _ in range(4)]
        assert got == ["250", "250", "550", "354"], got
        sock.sendall(b"Subject: piped\r\n\r\n..dot\r\n.\r\nQUIT\r\n")
        assert reply().startswith("250")
        assert reply().startswith("221")
    msg = wait_for_message(smtp_server, "piped")
    assert msg.get_payload().startswith(".dot")


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
@pytest.mark.parametrize("extra", [[], ["--tls"], ["--tls-on-connect"], ["--auth", "PLAIN"],
                                   ["--auth", "CRAM-MD5", "--tls"], ["--pipeline"]])
def test_swaks(smtp_server, extra):
    port = smtp_server.port(465 if "--tls-on-connect" in extra else 25)
    subject = "swaks-" + "-".join(e.strip("-") for e in extra)
    cmd = ["swaks", "--server", "127.0.0.1", "--port", str(port), "--from", "a@far.example",
           "--to", addr(smtp_server), "--header", f"Subject: {subject}", "--timeout", "20"] + extra
    if "--auth" in extra:
        cmd += ["--auth-user", USER, "--auth-password", PASSWORD]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wait_for_message(smtp_server, subject)


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks_relay_refused(smtp_server):
    proc = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(smtp_server.port(25)),
                           "--from", "a@far.example", "--to", "b@elsewhere.example",
                           "--quit-after", "RCPT"], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "550 5.7.1" in proc.stdout
