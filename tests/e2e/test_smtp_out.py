"""SMTP sending (issue 5 item 3, guide.txt:11322-11509): messages dropped in `Submitted/` for
`someone@remote.test` leave gatehoused over SMTP and reach a Python SMTP sink on 127.0.0.x:
through the MX record a Python DNS stub serves (`DNSServers`), through the relay host
(`ForwardTo`), with STARTTLS (opportunistic) and without; a 4xx sink gets a second attempt
(`RetryEvery` in seconds); a 5xx sink makes a failure report in the sender's INBOX.mbox.

The sink is written here (socketserver), the DNS stub is dns_helpers.DnsStub: no extra
packages. The MX test binds port 25 on a 127.0.x.y address (MX delivery always uses port 25) and
is skipped when that is not allowed.

Needs the mail path in gatehoused: PIPE, the queue, the Router and the SMTP channel; the DSN test
needs Local Delivery too (branch `local`).
"""

import socket
import socketserver
import ssl
import subprocess
import threading
import time
import uuid

import pytest

from cli_helpers import cli
from dns_helpers import DnsStub
from mail_helpers import WAIT, drop, messages_with


class _SmtpHandler(socketserver.StreamRequestHandler):
    def w(self, text):
        self.request.sendall((text + "\r\n").encode())

    def handle(self):
        sink = self.server.sink
        with sink.lock:
            sink.connections += 1
        f = self.request.makefile("rb")
        tls = False
        mail, rcpts = None, []
        self.w(sink.greeting)
        while True:
            line = f.readline(4096)
            if not line:
                return
            cmd = line.decode("latin-1").rstrip("\r\n")
            with sink.lock:
                sink.commands.append(cmd)
            u = cmd.upper()
            if u.startswith("EHLO"):
                caps = ["250-sink.remote.test", "250-SIZE 10000000"]
                if sink.tls_ctx and not tls:
                    caps.append("250-STARTTLS")
                if sink.dsn:
                    caps.append("250-DSN")
                caps.append("250 8BITMIME")
                self.w("\r\n".join(caps))
            elif u.startswith("HELO"):
                self.w("250 sink.remote.test")
            elif u == "STARTTLS" and sink.tls_ctx and not tls:
                self.w("220 go ahead")
                self.request = sink.tls_ctx.wrap_socket(self.request, server_side=True)
                f = self.request.makefile("rb")
                tls = True
            elif u.startswith("MAIL"):
                mail, rcpts = cmd, []
                self.w("250 ok")
            elif u.startswith("RCPT"):
                self.w(sink.rcpt_reply)
                if sink.rcpt_reply.startswith("2"):
                    rcpts.append(cmd)
            elif u == "DATA":
                self.w("354 go ahead")
                data = []
                while True:
                    l = f.readline(100000)
                    if not l or l == b".\r\n":
                        break
                    data.append(l[1:] if l.startswith(b".") else l)
                with sink.lock:
                    sink.messages.append({"mail": mail, "rcpts": rcpts, "tls": tls,
                                          "data": b"".join(data).decode("utf-8", "replace")})
                self.w("250 queued")
            elif u == "RSET":
                mail, rcpts = None, []
                self.w("250 ok")
            elif u == "QUIT":
                self.w("221 bye")
                return
            else:
                self.w("502 not here")


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class Sink:
    """An SMTP sink on (host, port); port 0 picks a free one. dsn=True advertises DSN."""

    def __init__(self, host="127.0.0.1", port=0, rcpt_reply="250 ok", tls_ctx=None,
                 greeting="220 sink.remote.test ESMTP", dsn=False):
        self.lock = threading.Lock()
        self.dsn = dsn
        self.greeting = greeting
        self.messages, self.commands, self.connections = [], [], 0
        self.rcpt_reply, self.tls_ctx = rcpt_reply, tls_ctx
        self.server = _Server((host, port), _SmtpHandler)
        self.server.sink = self
        self.host, self.port = self.server.server_address
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def wait(self, pred, timeout=WAIT):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if pred(self):
                    return True
            time.sleep(0.1)
        return False


def tls_context(tmp_path, name="remote.test"):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName=DNS:{name}"],
                   check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def smtp_settings(gatehouse_bin, server, **kv):
    body = "".join(f'{k}="{v}";' for k, v in kv.items())
    cli(gatehouse_bin, server, "UpdateModule", "SMTP", "{" + body + "}", check=True)


def send_out(server, marker, to="someone@remote.test", sender="sender@example.test"):
    drop(server, f"out-{marker}", (
        f"Return-Path: <{sender}>\n"
        f"From: Sender <{sender}>\n"
        f"To: <{to}>\n"
        f"Subject: out {marker}\n"
        "\n"
        f"body {marker}\n"
        ".a line starting with a dot\n"
    ))


def got(sink, marker):
    return lambda s: any(marker in m["data"] for m in s.messages)


def test_through_the_mx_record(server, gatehouse_bin):
    ip = "127.0.%d.%d" % (uuid.uuid4().int % 200 + 20, uuid.uuid4().int % 200 + 20)
    try:
        sink = Sink(host=ip, port=25)
    except OSError as e:
        pytest.skip(f"cannot listen on {ip}:25 ({e})")
    dns = DnsStub(mx={"remote.test": [(10, "mx.remote.test")]}, a={"mx.remote.test": ip},
                  ttl=60)
    try:
        smtp_settings(gatehouse_bin, server, DNSServers=f"127.0.0.1:{dns.port}", SendTLS="Never")
        marker = uuid.uuid4().hex
        send_out(server, marker)
        assert sink.wait(got(sink, marker)), f"not delivered through the MX: {sink.commands}"
        m = [m for m in sink.messages if marker in m["data"]][0]
        assert m["mail"].startswith("MAIL FROM:<sender@example.test>")
        assert m["rcpts"] == ["RCPT TO:<someone@remote.test>"]
        assert ".a line starting with a dot" in m["data"]
        assert not m["tls"]
    finally:
        sink.close()
        dns.close()


def loopback_ip():
    return "127.0.%d.%d" % (uuid.uuid4().int % 200 + 20, uuid.uuid4().int % 200 + 20)


def test_mx_preference_and_the_implicit_mx(server, gatehouse_bin):
    ip, busy_ip = loopback_ip(), loopback_ip()
    try:
        sink = Sink(host=ip, port=25)
        busy = Sink(host=busy_ip, port=25, greeting="421 4.3.2 busy")
    except OSError as e:
        pytest.skip(f"cannot listen on port 25 ({e})")
    # RFC 5321 §5.1: the lowest preference first (it is busy, so the next one);
    # a domain without MX records is its own mail server.
    dns = DnsStub(mx={"pref.test": [(20, "good.pref.test"), (5, "bad.pref.test")]},
                  a={"good.pref.test": ip, "bad.pref.test": busy_ip, "nomx.test": ip}, ttl=60)
    try:
        smtp_settings(gatehouse_bin, server, DNSServers=f"127.0.0.1:{dns.port}")
        m1, m2 = uuid.uuid4().hex, uuid.uuid4().hex
        send_out(server, m1, to="someone@pref.test")
        send_out(server, m2, to="someone@nomx.test")
        assert sink.wait(got(sink, m1)), f"not delivered through the second MX: {sink.commands}"
        assert sink.wait(got(sink, m2)), f"not delivered to the implicit MX: {sink.commands}"
        assert busy.connections >= 1, "the preferred MX was not tried first"
    finally:
        busy.close()
        sink.close()
        dns.close()


def test_through_the_relay_without_tls(server, gatehouse_bin):
    sink = Sink()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    try:
        # guide.txt:11385-11392: the first relay refuses connections, the second takes the mail.
        smtp_settings(gatehouse_bin, server, ForwardTo=f"127.0.0.1:{dead_port},127.0.0.1:{sink.port}")
        marker = uuid.uuid4().hex
        send_out(server, marker)
        assert sink.wait(got(sink, marker)), f"not delivered through the relay: {sink.commands}"
        assert not sink.messages[0]["tls"]
    finally:
        sink.close()


def test_through_the_relay_with_starttls(server, gatehouse_bin, tmp_path):
    sink = Sink(tls_ctx=tls_context(tmp_path))
    try:
        smtp_settings(gatehouse_bin, server, ForwardTo=f"127.0.0.1:{sink.port}", SendTLS="Opportunistic")
        marker = uuid.uuid4().hex
        send_out(server, marker)
        assert sink.wait(got(sink, marker)), f"not delivered: {sink.commands}"
        assert sink.messages[0]["tls"], "sent in clear although STARTTLS was offered"
        assert "STARTTLS" in sink.commands
    finally:
        sink.close()


def test_a_4xx_is_retried(server, gatehouse_bin):
    sink = Sink(rcpt_reply="451 4.3.0 try again later")
    try:
        cli(gatehouse_bin, server, "UpdateModule", "Queue", "{RetryEvery=2s;}", check=True)
        smtp_settings(gatehouse_bin, server, ForwardTo=f"127.0.0.1:{sink.port}", IdleTimeout="0")
        send_out(server, uuid.uuid4().hex)
        assert sink.wait(lambda s: sum(c.startswith("RCPT") for c in s.commands) >= 2, timeout=30), \
            f"no second attempt: {sink.commands}"
        assert not sink.messages
    finally:
        sink.close()


def test_a_5xx_makes_a_failure_report(server, gatehouse_bin):
    cli(gatehouse_bin, server, "CreateAccount", "sender", check=True)
    sink = Sink(rcpt_reply="550 5.1.1 no such user here")
    try:
        smtp_settings(gatehouse_bin, server, ForwardTo=f"127.0.0.1:{sink.port}")
        marker = uuid.uuid4().hex
        send_out(server, marker)
        assert sink.wait(lambda s: any(c.startswith("RCPT") for c in s.commands))
        reports = messages_with(server, "sender", "", timeout=WAIT)
        reports = [m for m in reports if "report" in (m.get_content_type() or "")]
        assert reports, "no failure report in the sender's INBOX"
        text = reports[0].as_string()
        assert "550 5.1.1 no such user here" in text
        assert "someone@remote.test" in text
    finally:
        sink.close()


def test_required_tls_never_sends_in_clear(server, gatehouse_bin):
    cli(gatehouse_bin, server, "CreateAccount", "sender", check=True)
    sink = Sink()
    try:
        # guide.txt:11494-11496: no STARTTLS from the server, so the message is rejected.
        smtp_settings(gatehouse_bin, server, ForwardTo=f"127.0.0.1:{sink.port}", SendTLS="Required")
        marker = uuid.uuid4().hex
        send_out(server, marker)
        reports = [m for m in messages_with(server, "sender", "", timeout=WAIT)
                   if "report" in (m.get_content_type() or "")]
        assert reports, "no failure report in the sender's INBOX"
        assert "STARTTLS" in reports[0].as_string()
        assert not any(c.startswith("MAIL") for c in sink.commands), sink.commands
    finally:
        sink.close()


def test_router_forms_skip_the_relay(server, gatehouse_bin):
    sink = Sink()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    try:
        # guide.txt:11955-11969: `[ip:port]` and `host.port.smtp` Router records; an address
        # literal goes straight there even with Forward to set (guide.txt:11397-11399).
        cli(gatehouse_bin, server, "SetRouterTable",
            f"literal.test = [127.0.0.1:{sink.port}]\nported.test = 127.0.0.1.{sink.port}.smtp",
            check=True)
        smtp_settings(gatehouse_bin, server, ForwardTo=f"127.0.0.1:{dead_port}")
        m1, m2 = uuid.uuid4().hex, uuid.uuid4().hex
        send_out(server, m1, to="someone@literal.test")
        assert sink.wait(got(sink, m1)), f"not delivered to the literal: {sink.commands}"
        smtp_settings(gatehouse_bin, server, ForwardTo="")
        send_out(server, m2, to="someone@ported.test")
        assert sink.wait(got(sink, m2)), f"not delivered to host.port.smtp: {sink.commands}"
    finally:
        sink.close()


def test_a_domain_that_does_not_exist_fails(server, gatehouse_bin):
    cli(gatehouse_bin, server, "CreateAccount", "sender", check=True)
    dns = DnsStub(a={"other.test": "127.0.0.1"}, ttl=60)
    try:
        smtp_settings(gatehouse_bin, server, DNSServers=f"127.0.0.1:{dns.port}")
        send_out(server, uuid.uuid4().hex, to="someone@nowhere.test")
        reports = [m for m in messages_with(server, "sender", "", timeout=WAIT)
                   if "report" in (m.get_content_type() or "")]
        assert reports, "no failure report for NXDOMAIN"
        assert "does not exist" in reports[0].as_string()
    finally:
        dns.close()
