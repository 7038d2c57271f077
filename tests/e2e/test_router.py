"""The Router through the real `gatehouse` client (issue 4 item 2): a Routing Table with the
guide's record forms (guide.txt:10086-10401), domain objects (account aliases, groups, forwarders,
domain aliases), unknown-name processing per domain (guide.txt:7935-7990), `all@`, `+detail`,
`mailbox#account`, `%` routing, IP literals, loops and traversal attempts, each checked with the
`Route` command (guide.txt:7196-7219)."""

import subprocess

from cli_helpers import cli

MAIN = "example.test"


class G:
    def __init__(self, binary, server):
        self.binary, self.server = binary, server

    def ok(self, *args):
        got = cli(self.binary, self.server, *args, json=True)
        if isinstance(got, subprocess.CompletedProcess):
            raise AssertionError(f"gatehouse {' '.join(args)} exited {got.returncode}: "
                                 f"{got.stderr.strip()}")
        return got

    def fail(self, *args):
        proc = cli(self.binary, self.server, *args)
        assert proc.returncode != 0, f"gatehouse {' '.join(args)} succeeded: {proc.stdout!r}"
        return proc.stderr

    def route(self, address):
        return self.ok("Route", address)


def local(account, mailbox="INBOX"):
    return ["LOCAL", account, mailbox]


def test_router(server, gatehouse_bin):
    g = G(gatehouse_bin, server)
    # Clear-text postmaster password: every `gatehouse` run logs in (see test_cli_commands).
    g.ok("UpdateAccountSettings", "postmaster", "{PasswordEncryption=clear;}")
    g.ok("SetAccountPassword", "postmaster", "To", server.password)

    # Default records while no table was ever set (guide.txt:10378-10401).
    assert "localhost = " in g.ok("GetRouterTable").split("\n")
    assert g.route(f"root@{MAIN}") == local(f"postmaster@{MAIN}")
    assert g.route("postmaster@localhost") == local(f"postmaster@{MAIN}")

    for name in ("john", "bill", "public", "cl5-sales", "unified"):
        g.ok("CreateAccount", name)
    g.ok("SetAccountAliases", "john", "(jsmith)")
    g.ok("CreateDomain", "client.test")
    g.ok("SetDomainAliases", "client.test", "(mail.client.test)")
    g.ok("CreateAccount", "ann@client.test")
    g.ok("CreateGroup", "team@client.test", "{Members=(ann);}")
    g.ok("CreateForwarder", "jim@client.test", "TO", "john@other.test")
    g.ok("CreateForwarder", "back@client.test", "TO", "ann@client.test")

    table = "\n".join([
        "; the guide's record forms",
        "hq.stalker.test      = newhq.stalker.test",
        "Relay:*.old.test     = *.new.test",
        "<sales>              = john",
        "<dept-*>             = postmaster@*-dept.remote.test",
        "<*@client5.test>     = cl5-*",
        "NoRelay:<user>       = user@other.host.test",
        "<boxed>              = stuff#public",
        "uni.test             = Unified.local",
        "bad.test             = null",
        "<junk>               = error",
        "secret.test          = mail.secret.test.26.smtp",
        "port.test            = [192.0.2.5:2525]",
        "<loop1>              = loop2",
        "<loop2>              = loop1",
        "<*@pipe.test>        = exec*@pipe",
        "localhost            = ",
        "<root>               = postmaster",
    ])
    g.ok("SetRouterTable", table)
    assert g.ok("GetRouterTable") == table
    err = g.fail("SetRouterTable", "a.test = b.test\n<x@d*.test> = y")
    assert "line 2" in err, err
    assert g.ok("GetRouterTable") == table, "a refused table keeps the old one"

    assert g.route("u@hq.stalker.test") == ["SMTP", "newhq.stalker.test", "u@newhq.stalker.test"]
    assert g.route("u@host5.old.test") == ["SMTP", "host5.new.test", "u@host5.new.test"]
    assert g.route(f"sales@{MAIN}") == local(f"john@{MAIN}")
    assert g.route(f"dept-sales@{MAIN}") == ["SMTP", "sales-dept.remote.test",
                                             "postmaster@sales-dept.remote.test"]
    assert g.route("sales@client5.test") == local(f"cl5-sales@{MAIN}")
    assert g.route(f"user@{MAIN}") == ["SMTP", "other.host.test", "user@other.host.test"]
    assert g.route(f"boxed@{MAIN}") == local(f"public@{MAIN}", "stuff")
    assert g.route("anyone@uni.test") == local(f"unified@{MAIN}")
    assert g.route("x@bad.test") == ["SYSTEM", "NULL", ""]
    assert g.route(f"junk@{MAIN}") == ["SYSTEM", "ERROR", "Blacklisted Address"]
    assert g.route(f"MAILER-DAEMON@{MAIN}") == ["SYSTEM", "NULL", ""]
    assert g.route("u@secret.test") == ["SMTP", "mail.secret.test.26.smtp", "u@mail.secret.test"]
    assert g.route("u@port.test") == ["SMTP", "[192.0.2.5:2525]", "u@[192.0.2.5]"]
    assert g.route("u@pipe.test") == ["PIPE", "execu", "execu@pipe"]
    assert g.route("u@192.0.2.9") == ["SMTP", "[192.0.2.9]", "u@[192.0.2.9]"]
    assert g.route("john@[127.0.0.1]") == local(f"john@{MAIN}")
    assert g.route("<@relay.test:u@far.test>") == ["SMTP", "relay.test", "u%far.test@relay.test"]
    assert g.route(f"u%far.test@{MAIN}") == ["SMTP", "far.test", "u@far.test"]
    assert g.route(f"ann%client.test@{MAIN}") == local("ann@client.test")

    # Domain objects.
    assert g.route(f"jsmith@{MAIN}") == local(f"john@{MAIN}")
    assert g.route("team@client.test") == ["LIST", "team@client.test", "team"]
    assert g.route("jim@client.test") == ["SMTP", "other.test", "john@other.test"]
    assert g.route("back@client.test") == local("ann@client.test")
    assert g.route("ann@mail.client.test") == local("ann@client.test")
    assert g.route(f"john+lists@{MAIN}") == local(f"john@{MAIN}")
    assert g.route(f"jokes#john@{MAIN}") == local(f"john@{MAIN}", "jokes")

    # Unknown names (guide.txt:7935-7990) and all@ (guide.txt:7992-8051).
    assert "unknown user" in g.fail("Route", "nobody@client.test")
    assert "unknown user" in g.fail("Route", "all@client.test")
    g.ok("UpdateDomainSettings", "client.test", "{MailToAllAction=\"For Everybody\";}")
    assert g.route("all@client.test") == ["LIST", "all@client.test", "all"]
    g.ok("UpdateDomainSettings", "client.test", "{MailToUnknown=Discarded;}")
    assert g.route("nobody@client.test") == ["SYSTEM", "NULL", ""]
    g.ok("UpdateDomainSettings", "client.test",
         "{MailToUnknown=\"Rerouted to\";MailRerouteAddress=\"Bad-*@support.test\";}")
    assert g.route("jjones@client.test") == ["SMTP", "support.test", "Bad-jjones@support.test"]

    # Loops and garbage.
    assert "routing loop" in g.fail("Route", f"loop1@{MAIN}")
    for bad in ("../x@client.test", "a/b@client.test", "x@..", "a@b c.test", "<a@b.test",
                "../x#ann@client.test"):
        err = g.fail("Route", bad)
        assert "bad address" in err or "unknown user" in err, (bad, err)

    # Route needs Server Settings or Account Settings.
    g.ok("CreateAccount", "plain", "{PasswordEncryption=clear;Password=pw1;}")
    proc = cli(gatehouse_bin, server, "Route", "x@y.test", user="plain", password="pw1")
    assert proc.returncode != 0 and "Not enough access rights" in proc.stderr
