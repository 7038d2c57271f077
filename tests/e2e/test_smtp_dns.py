"""DNS-based Protection in the SMTP receiver (issue 5; guide.txt:3190-3208, 3406-3551): RBL
servers, Blacklist/UnBlacklist/Detect Clients by DNS Name, and Return-Path verification through
the DNS, against a Python DNS stub (`DNSServers`) that counts the queries it gets.

Clients connect from 127.0.0.x source addresses (the listener binds all addresses); only
127.0.0.1 is contacted.
"""

import smtplib
import time
import uuid

import pytest

from cli_helpers import cli
from dns_helpers import A, MX, DnsStub
from test_smtp_out import send_out


@pytest.fixture
def dns_server(server, gatehouse_bin):
    """A server with user1, and a way to point it at a DNS stub and set Protection."""
    cli(gatehouse_bin, server, "CreateAccount", "user1", "{Password=pw;}", check=True)
    stubs = []

    def use(stub, protection="{}", **smtp):
        stubs.append(stub)
        body = "".join(f'{k}="{v}";' for k, v in smtp.items())
        cli(gatehouse_bin, server, "UpdateModule", "SMTP",
            "{DNSServers=\"127.0.0.1:%d\";%s}" % (stub.port, body), check=True)
        cli(gatehouse_bin, server, "SetProtection", protection, check=True)

    server.use = use
    server.cli = lambda *a: cli(gatehouse_bin, server, *a, check=True)
    yield server
    for s in stubs:
        s.close()


def session(server, source):
    return smtplib.SMTP("127.0.0.1", server.port(25), timeout=20, source_address=(source, 0))


def rcpt(server, source, to=None, sender="a@far.example"):
    """MAIL and RCPT from `source`: the RCPT reply (code, text)."""
    to = to or f"user1@{server.main_domain}"
    with session(server, source) as s:
        s.ehlo("client.test")
        code, text = s.mail(sender)
        assert code == 250, (code, text)
        code, text = s.rcpt(to)
        return code, text.decode()


RBL = "{UseRBL=Yes;RBLServers=(rbl.test);}"


def test_an_rbl_listing_refuses_every_recipient_with_its_text(dns_server):
    stub = DnsStub(a={"2.0.0.127.rbl.test": "127.0.0.2", "3.0.0.127.rbl.test": "127.0.0.1"},
                   txt={"2.0.0.127.rbl.test": "Listed: see http://rbl.test/?127.0.0.2"})
    dns_server.use(stub, RBL)
    # guide.txt:3449-3498: the listed host may talk (220, MAIL), but its recipients are refused.
    code, text = rcpt(dns_server, "127.0.0.2")
    assert code == 550, text
    assert "rbl.test" in text and "Listed: see http://rbl.test/?127.0.0.2" in text, text
    # The answer is cached: a second connection costs no query.
    assert rcpt(dns_server, "127.0.0.2")[0] == 550
    assert stub.count("2.0.0.127.rbl.test", A) == 1, stub.queries
    # 127.0.0.1 as the answer is not a listing; NXDOMAIN is not either.
    assert rcpt(dns_server, "127.0.0.3")[0] == 250
    assert rcpt(dns_server, "127.0.0.1")[0] == 250
    assert stub.count("1.0.0.127.rbl.test", A) == 1, stub.queries
    assert "blacklisted by rbl.test" in dns_server.log


def test_authenticated_users_are_not_held_to_dns_listings(dns_server):
    stub = DnsStub(a={"2.0.0.127.rbl.test": "127.0.0.2"})
    dns_server.use(stub, RBL)
    with session(dns_server, "127.0.0.2") as s:
        s.ehlo("client.test")
        s.login("user1", "pw")
        s.mail("user1@" + dns_server.main_domain)
        code, text = s.rcpt("someone@remote.test")
        assert code == 250, text
    # The submission port needs AUTH anyway: no RBL query there.
    before = stub.count("2.0.0.127.rbl.test")
    with smtplib.SMTP("127.0.0.1", dns_server.port(587), timeout=20,
                      source_address=("127.0.0.2", 0)) as s:
        assert s.ehlo("client.test")[0] == 250
    assert stub.count("2.0.0.127.rbl.test") == before
    # The explicit Blacklist holds even after AUTH.
    dns_server.cli("SetBlacklistedIPs", "127.0.0.2")
    with session(dns_server, "127.0.0.2") as s:
        s.ehlo("client.test")
        s.login("user1", "pw")
        s.mail("user1@" + dns_server.main_domain)
        assert s.rcpt("someone@remote.test")[0] == 550


def test_white_holes_and_clients_are_not_asked_about(dns_server):
    stub = DnsStub(a={"2.0.0.127.rbl.test": "127.0.0.2", "4.0.0.127.rbl.test": "127.0.0.2"})
    dns_server.use(stub, RBL)
    dns_server.cli("SetWhiteHoleIPs", "127.0.0.2")
    dns_server.cli("SetClientIPs", "127.0.0.4")
    assert rcpt(dns_server, "127.0.0.2")[0] == 250
    assert rcpt(dns_server, "127.0.0.4")[0] == 250
    assert stub.queries == []


def test_an_rbl_that_does_not_answer_delays_but_does_not_refuse(dns_server):
    stub = DnsStub(silent={"2.0.0.127.rbl.test"})
    dns_server.use(stub, RBL)
    # Failed lookups are Problems, tag DNR (guide.txt:2790-2795).
    dns_server.cli("UpdateModule", "Log", "{SystemLog=Problems;}")
    started = time.monotonic()
    assert rcpt(dns_server, "127.0.0.2")[0] == 250
    took = time.monotonic() - started
    # Sent at most twice with the short time-out (guide.txt:3511-3513).
    assert 1.5 < took < 10, took
    assert 1 <= stub.count("2.0.0.127.rbl.test") <= 3, stub.queries
    assert "DNR 2.0.0.127.rbl.test" in dns_server.log, dns_server.log[-2000:]


def test_blacklist_and_unblacklist_by_dns_name(dns_server):
    stub = DnsStub(ptr={"127.0.0.4": "host4.dyn.test", "127.0.0.5": "good.dyn.test"},
                   a={"5.0.0.127.rbl.test": "127.0.0.2"})
    dns_server.use(stub, "{UseRBL=Yes;RBLServers=(rbl.test);"
                         "BlacklistByDNSName=Yes;BlacklistedDNSNames=(\"*.dyn.test\");"
                         "UnBlacklistByDNSName=Yes;UnBlacklistedDNSNames=(\"good.*\");}")
    code, text = rcpt(dns_server, "127.0.0.4")
    assert code == 550 and "host4.dyn.test" in text, text
    # Un-blacklisted by name: neither the name table nor the RBL listing counts.
    assert rcpt(dns_server, "127.0.0.5")[0] == 250
    # An explicit Blacklist entry cannot be un-blacklisted by name (guide.txt:3549).
    dns_server.cli("SetBlacklistedIPs", "127.0.0.5")
    assert rcpt(dns_server, "127.0.0.5")[0] == 550


def test_clients_detected_by_dns_name_may_relay(dns_server):
    stub = DnsStub(ptr={"127.0.0.6": "pc.lan.test", "127.0.0.7": "liar.lan.test"},
                   a={"pc.lan.test": "127.0.0.6", "liar.lan.test": "127.0.0.99"})
    dns_server.use(stub, "{DetectClientsByDNSName=Yes;ClientDNSNames=(\"*.lan.test\");}")
    assert rcpt(dns_server, "127.0.0.6", to="someone@remote.test")[0] == 250
    # The forward lookup must hold the address (guide.txt:3190-3208).
    assert rcpt(dns_server, "127.0.0.7", to="someone@remote.test")[0] == 550


def mail_from(server, sender, source="127.0.0.1", helo="client.test"):
    with session(server, source) as s:
        s.ehlo(helo)
        code, text = s.mail(sender)
        return code, text.decode()


def test_return_path_domains_are_verified_in_the_dns(dns_server):
    stub = DnsStub(mx={"good.test": [(10, "mx.good.test")], "fake.test": [(10, "ghost.fake.test")],
                       "blk.test": [(5, "mx.blk.test"), (20, "mx2.blk.test")]},
                   a={"client.test": "127.0.0.1", "mx.good.test": "127.0.0.9", "nomx.test": "127.0.0.10",
                      "mx.blk.test": "127.0.0.66", "mx2.blk.test": "127.0.0.9"},
                   txt={"bare.test": "v=spf1 -all"},
                   servfail={"down.test"})
    dns_server.use(stub, VerifyReturnPath="Everybody")
    dns_server.cli("SetBlacklistedIPs", "127.0.0.66")
    assert mail_from(dns_server, "a@good.test")[0] == 250
    assert mail_from(dns_server, "a@nomx.test")[0] == 250, "the implicit MX"
    code, text = mail_from(dns_server, "a@nowhere.test")
    assert code == 550 and "does not exist" in text, text
    code, text = mail_from(dns_server, "a@fake.test")
    assert code == 550 and "ghost.fake.test" in text, text
    code, text = mail_from(dns_server, "a@bare.test")
    assert code == 550 and "no MX or A" in text, text
    code, text = mail_from(dns_server, "a@blk.test")
    assert code == 550 and "127.0.0.66" in text, text
    # guide.txt:3444-3448: the DNS not answering is a temporary refusal.
    code, text = mail_from(dns_server, "a@down.test")
    assert code == 451, text
    # A local Return-Path is known to the Router: no DNS query (guide.txt:3429-3432).
    before = len(stub.queries)
    assert mail_from(dns_server, f"user1@{dns_server.main_domain}")[0] == 250
    assert len(stub.queries) == before
    # Clients are not verified with Non-Clients.
    dns_server.cli("UpdateModule", "SMTP", "{VerifyReturnPath=Non-Clients;}")
    dns_server.cli("SetClientIPs", "127.0.0.8")
    assert mail_from(dns_server, "a@nowhere2.test", source="127.0.0.8")[0] == 250
    assert mail_from(dns_server, "a@nowhere2.test")[0] == 550


def test_helo_names_are_verified_with_the_return_path(dns_server):
    stub = DnsStub(a={"client.test": "127.0.0.1"}, mx={"mxonly.test": [(10, "client.test")]},
                   servfail={"flaky.test"})
    dns_server.use(stub, VerifyReturnPath="Everybody")
    sender = f"user1@{dns_server.main_domain}"
    assert mail_from(dns_server, sender)[0] == 250
    assert mail_from(dns_server, sender, helo="mxonly.test")[0] == 250
    code, text = mail_from(dns_server, sender, helo="ghost.test")
    assert code == 550 and "HELO name ghost.test" in text, text
    assert mail_from(dns_server, sender, helo="flaky.test")[0] == 451
    # Names without a dot and address literals are not looked up (guide.txt:25637).
    before = len(stub.queries)
    assert mail_from(dns_server, sender, helo="laptop")[0] == 250
    assert mail_from(dns_server, sender, helo="[127.0.0.1]")[0] == 250
    assert len(stub.queries) == before
    # Not verified when Return-Paths are not (guide.txt:11561).
    dns_server.cli("UpdateModule", "SMTP", "{VerifyReturnPath=Nobody;}")
    assert mail_from(dns_server, sender, helo="ghost.test")[0] == 250


def test_bad_protection_settings_are_refused(dns_server, gatehouse_bin):
    r = cli(gatehouse_bin, dns_server, "SetProtection", "{UseRBL=Yes;RBLServers=(\"not a name\");}")
    assert r.returncode != 0 and "not a domain name" in r.stderr, (r.stdout, r.stderr)


def test_an_mx_lookup_without_answer_defers_the_message(dns_server, gatehouse_bin):
    """Sending: SERVFAIL for the MX query means "ask again later" (RFC 5321 §5.1), not "no MX":
    the domain's A record (here 127.0.0.1, where nothing listens on port 25) is not tried."""
    stub = DnsStub(a={"down.test": "127.0.0.1"}, servfail={("down.test", MX)})
    dns_server.use(stub, SendTLS="Never")
    send_out(dns_server, uuid.uuid4().hex, to="someone@down.test")
    deadline = time.monotonic() + 20
    while True:
        states = [m["State"] for m in cli(gatehouse_bin, dns_server, "ListQueue", json=True) or []]
        if any(s.startswith("Deferred") for s in states):
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.2)
    assert any("MX lookup for down.test" in s for s in states), states
    assert stub.count("down.test", A) == 0, stub.queries
