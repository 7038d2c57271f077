"""Serving LAN clients (issue 7 item 3, guide.txt:5304-5313): mail between local users makes no
DNS query and no outgoing TCP connection, whether a LAN client (a Client IP Address) sends it over
SMTP or it is submitted locally (PIPE's `Submitted/`); and the SMTP "Verify Return-Path for"
option (guide.txt:11558-11570, 3406-3448) lets Client IP Addresses through unchecked when it says
Non-Clients, and checks them when it says Everybody.

A counting DNS stub (dns_helpers.DnsStub with an empty zone, the SMTP module's `DNSServers`; it
answers NXDOMAIN) and an SMTP sink (the relay, `ForwardTo`) would see any traffic; the test ends
by sending one message out to show that both do count."""

import smtplib
import time
import uuid

from cli_helpers import cli
from dns_helpers import DnsStub
from mail_helpers import drop, messages_with
from test_smtp_out import Sink, smtp_settings


def lan_message(sender, to, marker):
    return (f"From: <{sender}>\r\nTo: <{to}>\r\nSubject: lan {marker}\r\n\r\nbody {marker}\r\n")


def test_local_mail_makes_no_dns_or_tcp_traffic(server, gatehouse_bin):
    ok = lambda *a, **k: cli(gatehouse_bin, server, *a, check=True, **k)
    dns, sink = DnsStub(), Sink()
    try:
        smtp_settings(gatehouse_bin, server, DNSServers=f"127.0.0.1:{dns.port}",
                      ForwardTo=f"127.0.0.1:{sink.port}", SendTLS="Never")
        ok("SetClientIPs", "127.0.0.1")
        for name in ("ann", "bob"):
            ok("CreateAccount", name)
        marker = uuid.uuid4().hex
        # A LAN client (127.0.0.1 is a Client IP Address) sends to a local user over SMTP...
        with smtplib.SMTP("127.0.0.1", server.port(25), timeout=10) as s:
            s.sendmail("ann@example.test", ["bob@example.test"],
                       lan_message("ann@example.test", "bob@example.test", f"{marker}-smtp"))
        # ...and a local program submits one.
        drop(server, f"lan-{marker}", f"Return-Path: <bob@example.test>\n"
                                      f"{lan_message('bob@example.test', 'ann@example.test', marker + '-pipe')}")
        assert len(messages_with(server, "bob", f"{marker}-smtp")) == 1
        assert len(messages_with(server, "ann", f"{marker}-pipe")) == 1
        time.sleep(1)
        assert dns.seen() == 0, "a DNS query for mail between local users"
        assert sink.connections == 0
        # The instruments work: a message to the outside goes to the relay (the sink)...
        with smtplib.SMTP("127.0.0.1", server.port(25), timeout=10) as s:
            s.sendmail("ann@example.test", ["someone@outside.test"],
                       lan_message("ann@example.test", "someone@outside.test", f"{marker}-out"))
        assert sink.wait(lambda s: s.connections > 0), "the sink saw nothing"
        # ...and, sent directly, makes a DNS query.
        smtp_settings(gatehouse_bin, server, ForwardTo="")
        with smtplib.SMTP("127.0.0.1", server.port(25), timeout=10) as s:
            s.sendmail("ann@example.test", ["someone@elsewhere.test"],
                       lan_message("ann@example.test", "someone@elsewhere.test", f"{marker}-direct"))
        deadline = time.monotonic() + 20
        while dns.seen() == 0:
            assert time.monotonic() < deadline, "the DNS stub saw nothing"
            time.sleep(0.1)
    finally:
        dns.close()
        sink.close()


def mail_from(server, path):
    with smtplib.SMTP("127.0.0.1", server.port(25), timeout=10) as s:
        s.ehlo("lan.example.test")
        return s.mail(path)[0]


def test_verify_return_path_for_lan_clients(server, gatehouse_bin):
    ok = lambda *a, **k: cli(gatehouse_bin, server, *a, check=True, **k)
    ok("SetClientIPs", "127.0.0.1")
    # An IP-literal Return-Path that is not a client address fails verification.
    odd = "someone@[192.0.2.7]"
    smtp_settings(gatehouse_bin, server, VerifyReturnPath="Non-Clients")
    assert mail_from(server, odd) == 250, "a Client IP Address is not verified with Non-Clients"
    smtp_settings(gatehouse_bin, server, VerifyReturnPath="Everybody")
    assert mail_from(server, odd) == 550
    smtp_settings(gatehouse_bin, server, VerifyReturnPath="Nobody")
    assert mail_from(server, odd) == 250
