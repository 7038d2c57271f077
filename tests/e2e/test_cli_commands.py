"""Every implemented CLI command through the real `gatehouse` client against a running server
(issue 3), with the access rights: a domain administrator cannot touch another domain, a user
reads only their own settings and changes only their own password, a Monitor account monitors.

`test_every_implemented_command_is_called` parses docs/cli.md and this file: a command marked
implemented there without a call here (or a call of a command that is not implemented) fails it.
"""

import ast
import re
import subprocess
import time
from pathlib import Path

from mail_helpers import drop
from cli_helpers import cli, pwd_session

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"

# Names called here on purpose although docs/cli.md marks them not implemented: they must answer
# "Unknown command".
NOT_IMPLEMENTED_CALLED = {"nosuchcommand", "getdomainalerts", "createlist"}

DENIED = "Not enough access rights"

# Files whose `gatehouse` calls count as coverage too (commands tested by area).
CALLED_ELSEWHERE = ("test_mailboxes.py", "test_websites.py")


class G:
    """`gatehouse` as one account: ok() returns the JSON result, fail() the stderr of a failure."""

    def __init__(self, binary, server, user="postmaster", password=None):
        self.binary, self.server, self.user, self.password = binary, server, user, password

    def run(self, cmd, *args):
        return cli(self.binary, self.server, cmd, *args, user=self.user, password=self.password)

    def ok(self, cmd, *args):
        got = cli(self.binary, self.server, cmd, *args, user=self.user, password=self.password,
                  json=True)
        if isinstance(got, subprocess.CompletedProcess):
            raise AssertionError(f"[{self.user}] gatehouse {cmd} {' '.join(args)} exited "
                                 f"{got.returncode}: {got.stderr.strip()}")
        return got

    def fail(self, cmd, *args, code=1, expect=None):
        proc = self.run(cmd, *args)
        assert proc.returncode == code, (
            f"[{self.user}] gatehouse {cmd} {' '.join(args)}: expected exit {code}, "
            f"got {proc.returncode}; stdout {proc.stdout!r} stderr {proc.stderr!r}")
        if expect is not None:
            assert expect in proc.stderr, (
                f"[{self.user}] gatehouse {cmd} {' '.join(args)}: expected {expect!r} in "
                f"stderr {proc.stderr!r}")
        return proc.stderr


def gh(gatehouse_bin, server, user="postmaster", password=None):
    return G(gatehouse_bin, server, user, password)


# Every `gatehouse` run logs in; an argon2 check in a debug server takes ~0.6 s. The accounts the
# tests log in as many times store their passwords in clear (a documented PasswordEncryption value)
# so the suite stays fast; joe in test_accounts keeps the default encryption.
CLEAR = "PasswordEncryption=clear;"


def postmaster(gatehouse_bin, server):
    pm = gh(gatehouse_bin, server)
    pm.ok("UpdateAccountSettings", "postmaster", "{" + CLEAR + "}")
    pm.ok("SetAccountPassword", "postmaster", "To", server.password)
    return pm


# ------------------------------------------------------------------ accounts


def test_accounts(server, gatehouse_bin):
    pm = postmaster(gatehouse_bin, server)
    pm.ok("CreateAccount", "joe", '{RealName="Joe Q";Password=secret1;}')
    pm.fail("CreateAccount", "joe", expect="already exists")
    pm.ok("CreateAccount", "txt", "TextMailbox")
    accounts = pm.ok("ListAccounts")
    assert accounts["joe"] == "MultiMailbox" and accounts["txt"] == "TextMailbox"
    assert "joe" in pm.ok("ListAccounts", server.main_domain)
    assert pm.ok("lstacnt") == accounts  # a short name (docs/cli.md)

    assert pm.ok("GetAccountSettings", "joe")["RealName"] == "Joe Q"
    pm.ok("UpdateAccountSettings", "joe", '{RealName="Joe R";MaxAccountSize=5M;}')
    got = pm.ok("GetAccountSettings", f"joe@{server.main_domain}")
    assert got["RealName"] == "Joe R" and got["MaxAccountSize"] == "5M"
    pm.ok("UpdateAccountSettings", "joe", "{MaxAccountSize=default;}")
    got = pm.ok("GetAccountSettings", "joe")
    assert "MaxAccountSize" not in got and got["RealName"] == "Joe R"

    # Effective settings: account over domain Default Account Settings over server-wide defaults
    # over the built-in defaults.
    assert pm.ok("GetAccountEffectiveSettings", "joe")["PWDAllowed"] == "YES"
    pm.ok("UpdateAllAccountsDefaults", "{MaxAccountSize=10M;}")
    assert pm.ok("GetAccountEffectiveSettings", "joe")["MaxAccountSize"] == "10M"
    pm.ok("UpdateAccountDefaults", "{MaxAccountSize=20M;}")
    assert pm.ok("GetAccountEffectiveSettings", "joe")["MaxAccountSize"] == "20M"
    pm.ok("UpdateAccountSettings", "joe", "{MaxAccountSize=30M;}")
    assert pm.ok("GetAccountEffectiveSettings", "joe")["MaxAccountSize"] == "30M"
    pm.ok("UpdateAccountSettings", "joe", "{MaxAccountSize=default;}")
    pm.ok("UpdateAccountDefaults", "{MaxAccountSize=default;}")
    assert pm.ok("GetAccountEffectiveSettings", "joe")["MaxAccountSize"] == "10M"

    # SetAccountSettings replaces.
    pm.ok("SetAccountSettings", "txt", '{RealName="Only";}')
    pm.ok("SetAccountSettings", "txt", '{MaxAccountSize=1M;}')
    got = pm.ok("GetAccountSettings", "txt")
    assert got.get("MaxAccountSize") == "1M" and "RealName" not in got

    # Passwords.
    pm.ok("VerifyAccountPassword", "joe", "PASSWORD", "secret1")
    pm.ok("SetAccountPassword", "joe", "To", "n3w pass")
    pm.ok("VerifyAccountPassword", "joe", "PASSWORD", "n3w pass")
    err = pm.fail("VerifyAccountPassword", "joe", "PASSWORD", "secret1")
    assert err.strip()
    # The account logs in with the new password (and reads its own settings).
    assert gh(gatehouse_bin, server, "joe", "n3w pass").ok("GetAccountSettings", "*")["RealName"] == "Joe R"

    # Aliases: stored, and usable as a login name.
    assert pm.ok("GetAccountAliases", "joe") == []
    pm.ok("SetAccountAliases", "joe", "(jq, joeq)")
    assert sorted(pm.ok("GetAccountAliases", "joe")) == ["joeq", "jq"]
    assert gh(gatehouse_bin, server, "jq", "n3w pass").ok("GetAccountSettings", "*")["RealName"] == "Joe R"
    pm.fail("CreateAccount", "jq")

    # Rules.
    assert pm.ok("GetAccountRules", "joe") == []
    pm.ok("SetAccountRules", "joe", '((5, "spam", ((Subject, is, "*SPAM*")), ((Discard))))')
    rules = pm.ok("GetAccountRules", "joe")
    assert rules[0][0] == "5" and rules[0][1] == "spam"
    pm.fail("SetAccountRules", "joe", '((5, "bad"))')
    assert pm.ok("GetAccountRules", "joe")[0][1] == "spam"
    pm.fail("SetAccountRules", "joe", '((5, "r", (("Any Route", is, x)), ()))', expect="Server-Wide Rules only")
    assert pm.ok("GetServerRules") == []
    pm.ok("SetServerRules", '((9, "scan", (), ((ExternalFilter))))')
    assert pm.ok("GetServerRules")[0][1] == "scan"
    pm.fail("SetServerRules", '((9, "bad", ((Colour, is, red)), ()))', expect="unknown condition 'Colour'")

    # Rights.
    assert pm.ok("GetAccountRights", "postmaster") == ["Master"]
    assert pm.ok("GetAccountRights", "joe") == []
    pm.ok("SetAccountRights", "joe", "(Monitor)")
    assert pm.ok("GetAccountRights", "joe") == ["Monitor"]
    pm.ok("SetAccountRights", "joe", "()")
    assert pm.ok("GetAccountRights", "joe") == []

    # Info, WebUser, location.
    assert isinstance(pm.ok("GetAccountInfo", "joe", "Key", "LastLogin"), str)
    assert pm.ok("GetAccountInfo", "joe", "Key", "NoSuchInfoKey") == ""
    assert pm.ok("GetWebUser", "joe") == {}
    pm.ok("SetWebUser", "joe", "{Language=German;}")
    assert pm.ok("GetWebUser", "joe") == {"Language": "German"}
    assert pm.ok("GetAccountLocation", "joe") == "joe.macnt"
    assert pm.ok("GetAccountLocation", "txt") == "txt.mbox"

    # Rename: the old name is gone, settings and password move along.
    pm.ok("RenameAccount", "joe", "into", "joseph")
    pm.fail("GetAccountSettings", "joe")
    assert "joe" not in pm.ok("ListAccounts")
    assert pm.ok("GetAccountSettings", "joseph")["RealName"] == "Joe R"
    pm.ok("VerifyAccountPassword", "joseph", "PASSWORD", "n3w pass")

    # Delete.
    pm.ok("DeleteAccount", "joseph")
    pm.fail("GetAccountSettings", "joseph")
    assert "joseph" not in pm.ok("ListAccounts")
    pm.fail("DeleteAccount", "joseph")
    pm.fail("DeleteAccount", "postmaster")  # not one's own account


def test_groups_and_forwarders(server, gatehouse_bin):
    pm = postmaster(gatehouse_bin, server)
    pm.ok("CreateAccount", "joe")
    assert pm.ok("ListGroups") == []
    pm.ok("CreateGroup", "staff", '{RealName="Staff";Members=(joe);}')
    assert pm.ok("ListGroups") == ["staff"]
    got = pm.ok("GetGroup", "staff")
    assert got["RealName"] == "Staff" and got["Members"] == ["joe"]
    pm.ok("SetGroup", "staff", '{Members=(joe, postmaster);}')
    got = pm.ok("GetGroup", "staff")
    assert got["Members"] == ["joe", "postmaster"] and "RealName" not in got
    pm.ok("RenameGroup", "staff", "into", "team")
    pm.fail("GetGroup", "staff")
    assert pm.ok("ListGroups") == ["team"]
    pm.ok("DeleteGroup", "team")
    pm.fail("GetGroup", "team")
    assert pm.ok("ListGroups") == []

    assert pm.ok("ListForwarders") == []
    pm.ok("CreateForwarder", "out", "TO", "someone@elsewhere.test")
    assert pm.ok("ListForwarders") == ["out"]
    assert pm.ok("GetForwarder", "out") == "someone@elsewhere.test"
    pm.fail("CreateAccount", "out")  # the name is taken
    pm.ok("DeleteForwarder", "out")
    pm.fail("GetForwarder", "out")
    assert pm.ok("ListForwarders") == []


# ------------------------------------------------------------------ domains


def test_domains(server, gatehouse_bin):
    pm = postmaster(gatehouse_bin, server)
    assert pm.ok("MainDomainName") == server.main_domain
    pm.ok("CreateDomain", "client1.test", "{MailToUnknown=Discarded;}")
    pm.fail("CreateDomain", "client1.test")
    assert pm.ok("ListDomains") == [server.main_domain, "client1.test"]

    assert pm.ok("GetDomainSettings", "client1.test") == {"MailToUnknown": "Discarded"}
    pm.ok("UpdateDomainSettings", "client1.test", "{MailToAllAction=Accepted;}")
    assert pm.ok("GetDomainSettings", "client1.test") == {
        "MailToUnknown": "Discarded", "MailToAllAction": "Accepted"}
    pm.ok("UpdateDomainSettings", "client1.test", "{MailToAllAction=default;}")
    assert pm.ok("GetDomainSettings", "client1.test") == {"MailToUnknown": "Discarded"}
    pm.ok("SetDomainSettings", "client1.test", "{AccountsLimit=5;}")
    assert pm.ok("GetDomainSettings", "client1.test") == {"AccountsLimit": "5"}

    # Effective domain settings: domain over server-wide Default Domain Settings over built-ins.
    eff = pm.ok("GetDomainEffectiveSettings", "client1.test")
    assert eff["AccountsLimit"] == "5" and eff["MailToUnknown"] == "Rejected"
    assert pm.ok("GetDomainDefaults") == {}
    pm.ok("UpdateDomainDefaults", "{MailToUnknown=Discarded;AccountsLimit=100;}")
    assert pm.ok("GetDomainDefaults") == {"MailToUnknown": "Discarded", "AccountsLimit": "100"}
    eff = pm.ok("GetDomainEffectiveSettings", "client1.test")
    assert eff["MailToUnknown"] == "Discarded" and eff["AccountsLimit"] == "5"
    pm.ok("UpdateDomainDefaults", "{MailToUnknown=default;}")
    assert pm.ok("GetDomainDefaults") == {"AccountsLimit": "100"}
    pm.ok("SetDomainDefaults", "{MailToAllAction=Accepted;}")
    assert pm.ok("GetDomainDefaults") == {"MailToAllAction": "Accepted"}
    assert pm.ok("GetDomainEffectiveSettings")["MailToAllAction"] == "Accepted"  # the main domain

    # Account defaults at server and domain level; the template for new accounts.
    assert pm.ok("GetAllAccountsDefaults") == {}
    pm.ok("UpdateAllAccountsDefaults", '{MaxAccountSize=10M;RealName="Nobody";}')
    pm.ok("SetAllAccountsDefaults", "{MaxAccountSize=11M;}")
    assert pm.ok("GetAllAccountsDefaults") == {"MaxAccountSize": "11M"}
    assert pm.ok("GetAccountDefaults", "client1.test") == {}
    pm.ok("UpdateAccountDefaults", "client1.test", "{MaxMailboxes=7;}")
    pm.ok("SetAccountDefaults", "client1.test", "{MaxMailboxes=8;MaxWebSize=1M;}")
    assert pm.ok("GetAccountDefaults", "client1.test") == {"MaxMailboxes": "8", "MaxWebSize": "1M"}
    pm.ok("UpdateAccountDefaults", "client1.test", "{MaxWebSize=default;}")
    assert pm.ok("GetAccountDefaults", "client1.test") == {"MaxMailboxes": "8"}

    assert pm.ok("GetAccountTemplate", "client1.test") == {}
    pm.ok("UpdateAccountTemplate", "client1.test", '{RealName="From Template";}')
    assert pm.ok("GetAccountTemplate", "client1.test") == {"RealName": "From Template"}
    pm.ok("CreateAccount", "joe@client1.test")
    assert pm.ok("GetAccountSettings", "joe@client1.test")["RealName"] == "From Template"
    eff = pm.ok("GetAccountEffectiveSettings", "joe@client1.test")
    assert eff["MaxMailboxes"] == "8" and eff["MaxAccountSize"] == "11M"
    pm.ok("SetAccountTemplate", "client1.test", "{}")
    assert pm.ok("GetAccountTemplate", "client1.test") == {}

    assert pm.ok("GetWebUserDefaults", "client1.test") == {}
    pm.ok("SetWebUserDefaults", "client1.test", "{Language=German;}")
    assert pm.ok("GetWebUserDefaults", "client1.test") == {"Language": "German"}

    # Domain aliases are usable wherever a domain name is.
    assert pm.ok("GetDomainAliases", "client1.test") == []
    pm.ok("SetDomainAliases", "client1.test", "(mail.client1.test)")
    assert pm.ok("GetDomainAliases", "client1.test") == ["mail.client1.test"]
    assert "joe" in pm.ok("ListAccounts", "mail.client1.test")
    assert pm.ok("GetAccountSettings", "joe@mail.client1.test")["RealName"] == "From Template"
    pm.ok("CreateAccount", "ann@mail.client1.test")
    assert "ann" in pm.ok("ListAccounts", "client1.test")

    # Rename: the old name is gone, accounts move along.
    pm.ok("RenameDomain", "client1.test", "into", "client2.test")
    assert "client1.test" not in pm.ok("ListDomains")
    pm.fail("ListAccounts", "client1.test")
    assert "joe" in pm.ok("ListAccounts", "client2.test")

    # Delete: refused while not empty, unless forced; never the main domain.
    pm.fail("DeleteDomain", "client2.test")
    assert "client2.test" in pm.ok("ListDomains")
    pm.ok("DeleteDomain", "client2.test", "force")
    assert pm.ok("ListDomains") == [server.main_domain]
    pm.fail("GetAccountSettings", "joe@client2.test")
    pm.fail("DeleteDomain", server.main_domain, "force")


# ------------------------------------------------------------------ server settings


def test_server_settings(server, gatehouse_bin):
    pm = postmaster(gatehouse_bin, server)
    pwd = pm.ok("GetModule", "PWD")
    assert pwd["LogLevel"] == "2" and "Channels" in pwd
    pm.ok("UpdateModule", "PWD", "{LogLevel=5;}")
    assert pm.ok("GetModule", "PWD")["LogLevel"] == "5"
    pm.ok("UpdateModule", "PWD", "{LogLevel=default;}")
    assert pm.ok("GetModule", "PWD")["LogLevel"] == "2"
    pm.fail("UpdateModule", "PWD", "{Bogus=1;}", expect="Bogus")
    pm.ok("SetModule", "PWD", "{Channels=7;}")
    got = pm.ok("GetModule", "PWD")
    assert got["Channels"] == "7" and got["LogLevel"] == "2"
    pm.fail("GetModule", "NoSuchModule")
    assert (server.base / "Settings" / "PWD.settings").is_file()
    # The listener still answers after the module settings changed.
    assert pm.ok("MainDomainName") == server.main_domain

    # IP lists: multi-line text, checked.
    assert pm.ok("GetClientIPs") == ""
    assert pm.ok("GetBlacklistedIPs") == ""
    assert pm.ok("GetWhiteHoleIPs") == ""
    pm.ok("SetClientIPs", "10.0.0.1-10.0.0.255\n192.0.2.7 ; office")
    assert pm.ok("GetClientIPs") == "10.0.0.1-10.0.0.255\n192.0.2.7 ; office"
    pm.fail("SetClientIPs", "300.1.1.1")
    pm.fail("SetClientIPs", "10.0.0.1\nnot-an-address")
    assert pm.ok("GetClientIPs") == "10.0.0.1-10.0.0.255\n192.0.2.7 ; office"
    pm.ok("SetBlacklistedIPs", "192.0.2.66")
    assert pm.ok("GetBlacklistedIPs") == "192.0.2.66"
    pm.fail("SetBlacklistedIPs", "192.0.2.300")
    assert pm.ok("GetBlacklistedIPs") == "192.0.2.66"
    pm.ok("SetWhiteHoleIPs", "198.51.100.1-198.51.100.9")
    assert pm.ok("GetWhiteHoleIPs") == "198.51.100.1-198.51.100.9"
    pm.fail("SetWhiteHoleIPs", "x.y")

    assert pm.ok("GetProtection") == {}
    pm.ok("SetProtection", "{DenyExternalRelaying=YES;}")
    assert pm.ok("GetProtection") == {"DenyExternalRelaying": "YES"}
    assert pm.ok("GetBanned") == {}
    pm.ok("SetBanned", '{Lines=("Subject: win money");}')
    assert pm.ok("GetBanned") == {"Lines": ["Subject: win money"]}

    # Router Table.
    assert pm.ok("GetRouterTable").startswith("<root> = postmaster\n"), "the default records"
    table = "<*@old.test> = *@new.test\n<postmaster@x.test> = postmaster"
    pm.ok("SetRouterTable", table)
    assert pm.ok("GetRouterTable") == table
    pm.fail("SetRouterTable", "a.test = b.test\n*.x*.test = c.test", expect="line 2")
    assert pm.ok("GetRouterTable") == table
    assert pm.ok("Route", "joe@old.test") == ["SMTP", "new.test", "joe@new.test"]

    # TCP Activity Schedule.
    assert pm.ok("GetDialupSchedule") == []
    pm.ok("SetDialupSchedule", '({Days=mon-fri; When="19:30-07:30"; Pause=600;}, '
                               '{Days=Sunday; When="00:00-24:00"; Pause=0;})')
    assert pm.ok("GetDialupSchedule") == [
        {"Days": "Mon-Fri", "When": "19:30-07:30", "Pause": "600"},
        {"Days": "Sunday", "When": "00:00-24:00", "Pause": "0"}]
    pm.fail("SetDialupSchedule", '({Days=Never; When="01:00-02:00"; Pause=0;})', expect="Days")
    pm.fail("SetDialupSchedule", '({Days=Monday; When="25:00-26:00"; Pause=0;})')
    assert len(pm.ok("GetDialupSchedule")) == 2
    pm.ok("SetDialupSchedule", "()")
    assert pm.ok("GetDialupSchedule") == []


# ------------------------------------------------------------------ monitoring


def test_server_status(server, gatehouse_bin):
    pm = gh(gatehouse_bin, server)
    status = pm.ok("GetServerStatus")
    # docs/cli.md: "Returns a dictionary: Version, Uptime (seconds), Listeners, Connections,
    # QueueSize."
    for key in ("Version", "Uptime", "Listeners", "Connections", "QueueSize"):
        assert key in status, f"GetServerStatus lacks {key}: {status}"
    assert status["Version"]
    assert "PWD" in status["Listeners"]
    assert str(server.port(106)) in str(status["Listeners"]["PWD"])


def test_log_and_unknown_commands(server, gatehouse_bin):
    pm = postmaster(gatehouse_bin, server)
    marker = f"e2e-marker-{time.monotonic_ns()}"
    pm.ok("WriteLog", "2", f"hello {marker}")
    deadline = time.monotonic() + 5
    while True:
        records = pm.ok("ReadLog", "TEXT", marker)
        if records or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(records) == 1, records
    assert records[0]["Tag"] == "SYSTEM" and records[0]["Level"] == "2"
    assert records[0]["Text"] == f"hello {marker}"
    assert pm.ok("ReadLog", "TAG", "SYSTEM", "TEXT", marker, "LIMIT", "5") == records
    assert pm.ok("ReadLog", "TEXT", marker, "AFTER", records[0]["Id"]) == []
    assert pm.ok("ReadLog", "TAG", "NoSuchTag") == []
    # FROM/TO narrow by time of day; LAST takes the newest records.
    written = records[0]["Time"][11:19]
    assert pm.ok("ReadLog", "TEXT", marker, "FROM", written, "TO", "23:59:59") == records
    assert pm.ok("ReadLog", "TEXT", marker, "TO", "00:00:00") == [] or written == "00:00:00"
    assert pm.ok("ReadLog", "LAST", "1")[-1]["Id"] >= records[0]["Id"]
    pm.fail("ReadLog", "FROM", "25:00")
    pm.fail("WriteLog", "9", "bad level")
    pm.fail("ReadLog", "BOGUS", "1")

    pm.fail("NoSuchCommand", "x", expect="Unknown command")
    # Planned commands answer as unknown ones (docs/cli.md "Replies").
    pm.fail("GetDomainAlerts", expect="Unknown command")
    pm.fail("CreateList", "l1", "for", "postmaster", expect="Unknown command")
    # A login error is exit 2, not 1.
    gh(gatehouse_bin, server, "postmaster", "wrong-password").fail("MainDomainName", code=2)


def test_shutdown(server, gatehouse_bin):
    pm = postmaster(gatehouse_bin, server)
    assert (server.base / "ProcessID").is_file()
    pm.ok("Shutdown")
    assert server.proc.wait(timeout=15) == 0
    assert not (server.base / "ProcessID").exists()


# ------------------------------------------------------------------ rights


def _rights_setup(server, gatehouse_bin):
    pm = postmaster(gatehouse_bin, server)
    pm.ok("CreateDomain", "a.test")
    pm.ok("CreateDomain", "b.test")
    pm.ok("CreateAccount", "adm@a.test", "{" + CLEAR + "Password=admpw;}")
    pm.ok("SetAccountRights", "adm@a.test", "(Domain, CanCreateAccounts)")
    assert sorted(pm.ok("GetAccountRights", "adm@a.test")) == ["CanCreateAccounts", "Domain"]
    pm.ok("CreateAccount", "u@a.test", "{" + CLEAR + 'Password=upw;RealName="U";}')
    pm.ok("CreateAccount", "v@a.test", "{" + CLEAR + 'Password=vpw;RealName="V";}')
    pm.ok("CreateAccount", "bob@b.test", "{" + CLEAR + 'Password=bobpw;RealName="Bob";}')
    return pm


def test_domain_admin_stays_in_its_domain(server, gatehouse_bin):
    pm = _rights_setup(server, gatehouse_bin)
    adm = gh(gatehouse_bin, server, "adm@a.test", "admpw")

    # Its own domain (names without a domain are in a.test).
    adm.ok("CreateAccount", "new1", "{Password=n1;}")
    adm.ok("CreateAccount", "new2@a.test")
    accounts = adm.ok("ListAccounts")
    assert {"adm", "u", "v", "new1", "new2"} <= set(accounts)
    assert adm.ok("ListAccounts", "a.test") == accounts
    assert "new1" in pm.ok("ListAccounts", "a.test")
    assert adm.ok("GetAccountSettings", "u")["RealName"] == "U"
    assert adm.ok("GetDomainSettings") == {}
    adm.ok("RenameAccount", "new2", "into", "new3")
    adm.ok("DeleteAccount", "new3")
    assert "new3" not in pm.ok("ListAccounts", "a.test")
    # Settings it may not modify are ignored (no BasicSettings, no named settings).
    adm.ok("UpdateAccountSettings", "u", '{RealName="Changed";}')
    assert pm.ok("GetAccountSettings", "u@a.test")["RealName"] == "U"
    # Sub-rights it lacks.
    adm.fail("CreateGroup", "grp", expect=DENIED)
    adm.fail("SetAccountPassword", "u", "To", "x", expect=DENIED)
    pm.ok("VerifyAccountPassword", "u@a.test", "PASSWORD", "upw")

    # Another domain: every command refused, nothing changed.
    for cmd in (
        ("ListAccounts", "b.test"),
        ("CreateAccount", "evil@b.test"),
        ("GetAccountSettings", "bob@b.test"),
        ("GetAccountEffectiveSettings", "bob@b.test"),
        ("UpdateAccountSettings", "bob@b.test", '{RealName="Evil";}'),
        ("SetAccountPassword", "bob@b.test", "To", "evil"),
        ("VerifyAccountPassword", "bob@b.test", "PASSWORD", "bobpw"),
        ("RenameAccount", "bob@b.test", "into", "bob2@b.test"),
        ("RenameAccount", "new1", "into", "new1@b.test"),
        ("DeleteAccount", "bob@b.test"),
        ("GetAccountAliases", "bob@b.test"),
        ("GetAccountRights", "bob@b.test"),
        ("GetDomainSettings", "b.test"),
        ("UpdateDomainSettings", "b.test", "{AccountsLimit=1;}"),
        ("GetAccountDefaults", "b.test"),
        ("ListGroups", "b.test"),
        ("ListForwarders", "b.test"),
        ("GetDomainAliases", "b.test"),
    ):
        adm.fail(*cmd, expect=DENIED)
    assert set(pm.ok("ListAccounts", "b.test")) == {"bob"}
    assert pm.ok("GetAccountSettings", "bob@b.test")["RealName"] == "Bob"
    pm.ok("VerifyAccountPassword", "bob@b.test", "PASSWORD", "bobpw")
    assert pm.ok("GetDomainSettings", "b.test") == {}
    assert "new1" in pm.ok("ListAccounts", "a.test")

    # Server-level commands.
    for cmd in (
        ("ListDomains",),
        ("MainDomainName",),
        ("GetModule", "PWD"),
        ("SetClientIPs", "192.0.2.1"),
        ("CreateDomain", "c.test"),
        ("DeleteDomain", "b.test", "force"),
        ("SetAccountRights", "adm", "(Domain, CanCreateAccounts, CanCreateGroups)"),
        ("SetAccountSettings", "u", "{}"),
        ("ReadLog",),
        ("GetServerStatus",),
        ("Shutdown",),
    ):
        adm.fail(*cmd, expect=DENIED)
    assert pm.ok("ListDomains") == [server.main_domain, "a.test", "b.test"]
    assert pm.ok("GetClientIPs") == ""
    assert server.running


def test_user_reads_only_own_settings_and_changes_only_own_password(server, gatehouse_bin):
    pm = _rights_setup(server, gatehouse_bin)
    u = gh(gatehouse_bin, server, "u@a.test", "upw")

    for me in ("*", "u", "u@a.test"):
        assert u.ok("GetAccountSettings", me)["RealName"] == "U"
        assert u.ok("GetAccountEffectiveSettings", me)["PWDAllowed"] == "YES"
    assert isinstance(u.ok("GetAccountInfo", "*", "Key", "LastLogin"), str)
    for other in ("v", "v@a.test", "adm@a.test", "bob@b.test", f"postmaster@{server.main_domain}"):
        u.fail("GetAccountSettings", other, expect=DENIED)
        u.fail("GetAccountEffectiveSettings", other, expect=DENIED)
        u.fail("GetAccountInfo", other, "Key", "LastLogin", expect=DENIED)
    # Reading is all: no administration, not even of itself.
    u.fail("UpdateAccountSettings", "*", '{RealName="Me";}', expect=DENIED)
    u.fail("ListAccounts", expect=DENIED)
    u.fail("CreateAccount", "w", expect=DENIED)
    u.fail("GetAccountRights", "*", expect=DENIED)
    u.fail("ReadLog", expect=DENIED)
    assert pm.ok("GetAccountSettings", "u@a.test")["RealName"] == "U"

    # Passwords: SetAccountPassword needs Domain Administration (docs/cli.md) for anyone else's;
    # its own the user may set while PWDAllowed is YES (as WebMail's Settings page does).
    u.fail("SetAccountPassword", "v", "To", "hacked", expect=DENIED)
    u.fail("SetAccountPassword", "bob@b.test", "To", "hacked", expect=DENIED)
    u.ok("SetAccountPassword", "*", "To", "viacli")
    pm.ok("VerifyAccountPassword", "u@a.test", "PASSWORD", "viacli")
    u = gh(gatehouse_bin, server, "u@a.test", "viacli")
    u.ok("SetAccountPassword", "*", "To", "upw")
    pm.ok("VerifyAccountPassword", "v@a.test", "PASSWORD", "vpw")
    pm.ok("VerifyAccountPassword", "bob@b.test", "PASSWORD", "bobpw")
    pm.ok("VerifyAccountPassword", "u@a.test", "PASSWORD", "upw")

    # Its own password: NEWPASS over PWD.
    with pwd_session(server) as s:
        assert s.send("USER u@a.test").startswith("300")
        assert s.send("PASS upw") == "200 login OK"
        assert s.send("NEWPASS upw2") == "200 password changed"
    pm.ok("VerifyAccountPassword", "u@a.test", "PASSWORD", "upw2")
    pm.fail("VerifyAccountPassword", "u@a.test", "PASSWORD", "upw")
    assert gh(gatehouse_bin, server, "u@a.test", "upw2").ok("GetAccountSettings", "*")["RealName"] == "U"
    gh(gatehouse_bin, server, "u@a.test", "upw").fail("GetAccountSettings", "*", code=2)
    pm.ok("VerifyAccountPassword", "v@a.test", "PASSWORD", "vpw")

    # Refused when the account's PWDAllowed is NO.
    pm.ok("UpdateAccountSettings", "u@a.test", "{PWDAllowed=NO;}")
    with pwd_session(server) as s:
        s.send("USER u@a.test")
        assert s.send("PASS upw2") == "200 login OK"
        assert s.send("NEWPASS upw3").startswith("501")
    gh(gatehouse_bin, server, "u@a.test", "upw2").fail("SetAccountPassword", "*", "To", "upw3", expect=DENIED)
    pm.ok("VerifyAccountPassword", "u@a.test", "PASSWORD", "upw2")


def test_monitor_account(server, gatehouse_bin):
    pm = postmaster(gatehouse_bin, server)
    pm.ok("CreateAccount", "mon", "{" + CLEAR + "Password=monpw;}")
    pm.ok("SetAccountRights", "mon", "(Monitor)")
    mon = gh(gatehouse_bin, server, "mon", "monpw")
    assert mon.ok("GetServerStatus")["Version"]
    mon.ok("WriteLog", "3", "monitor wrote this")
    assert isinstance(mon.ok("ReadLog", "LIMIT", "10"), list)
    for cmd in (("CreateAccount", "x"), ("ListAccounts",), ("GetModule", "PWD"),
                ("SetRouterTable", "a = b"), ("ListDomains",), ("GetAccountSettings", "postmaster"),
                ("Route", "x@y.test")):
        mon.fail(*cmd, expect=DENIED)
    assert "x" not in pm.ok("ListAccounts")
    # Server rights are for main-domain accounts only.
    pm.ok("CreateDomain", "a.test")
    pm.ok("CreateAccount", "mon@a.test", "{" + CLEAR + "Password=monpw;}")
    pm.fail("SetAccountRights", "mon@a.test", "(Monitor)", expect="main domain")
    assert pm.ok("GetAccountRights", "mon@a.test") == []
    gh(gatehouse_bin, server, "mon@a.test", "monpw").fail("ReadLog", expect=DENIED)


# ------------------------------------------------------------------ queue


def test_queue_commands(server, gatehouse_bin):
    """ListQueue, ReleaseQueue, RetryQueue, DeleteQueuedMessage, RELEASESMTPQUEUE on an empty queue;
    the Queue module settings. Queued messages are in test_dsn.py and test_queue_crash.py."""
    pm = postmaster(gatehouse_bin, server)
    assert pm.ok("ListQueue") == []
    assert pm.ok("ListQueue", "example.test") == []
    for cmd in (("ReleaseQueue",), ("ReleaseQueue", "example.test"), ("RetryQueue",),
                ("RELEASESMTPQUEUE", "example.test")):
        pm.ok(*cmd)
    pm.fail("DeleteQueuedMessage", "12345", expect="Unknown message")
    pm.fail("RetryQueue", "12345", expect="No queued message")
    # A message that cannot be delivered yet (nothing listens on 127.0.0.1:9) waits in the queue.
    pm.ok("SetRouterTable", "queue.test = [127.0.0.1:9]")
    drop(server, "held", "From: postmaster@example.test\nTo: x@queue.test\nSubject: held\n\nwaits\n")
    deadline = time.monotonic() + 20
    while not (held := [m for m in pm.ok("ListQueue") if m["State"].startswith("Deferred")]):
        assert time.monotonic() < deadline, pm.ok("ListQueue")
        time.sleep(0.2)
    assert held[0]["Recipients"] == ["x@queue.test"]
    pm.ok("RetryQueue", held[0]["Id"])
    pm.ok("WakeUpNow")  # no TCP Activity Schedule: the link is open, the queue is tried now
    pm.ok("DeleteQueuedMessage", held[0]["Id"])
    assert pm.ok("ListQueue") == []
    pm.fail("DeleteQueuedMessage", "x", expect="Not a message id")
    queue = pm.ok("GetModule", "Queue")
    assert queue["Processors"] == "1" and queue["MaxHops"] == "30"
    pm.ok("UpdateModule", "Queue", "{Processors=2;RetryEvery=5m;}")
    assert pm.ok("GetModule", "Queue")["RetryEvery"] == "5m"
    pm.fail("UpdateModule", "Queue", "{Processors=0;}", expect="Processors")
    pm.fail("UpdateModule", "Queue", "{OnFailureReturn=sometimes;}", expect="OnFailureReturn")
    pm.ok("CreateAccount", "plainq", "{" + CLEAR + "Password=pq1;}")
    plain = gh(gatehouse_bin, server, "plainq", "pq1")
    plain.fail("ListQueue", expect=DENIED)
    plain.fail("RetryQueue", expect=DENIED)


# ------------------------------------------------------------------ RPOP records, test clock


def test_account_rpop_records_and_the_test_clock(server, gatehouse_bin):
    """Get/SetAccountRPOP (polling itself: test_rpop.py); SetTestClock only with --test-clock
    (used: test_dialup.py)."""
    pm = gh(gatehouse_bin, server)
    pm.ok("SetAccountRPOP", "postmaster",
          '({PollEvery=5m; Account=me; Host="pop.isp.test:1110"; Password=pw; Leave=Yes; APOP=Yes;})')
    rows = pm.ok("GetAccountRPOP", "postmaster")
    assert rows[0]["Host"] == "pop.isp.test:1110" and rows[0]["PollEvery"] == "300s", rows
    pm.fail("SetAccountRPOP", "postmaster", '({Account=me; Host=h; SpecialHeader=X-Real-To;})',
            expect="SpecialHeader")
    pm.ok("SetAccountRPOP", "postmaster", "()")
    assert pm.ok("GetAccountRPOP", "postmaster") == []
    pm.fail("SetTestClock", "2026-11-23T03:00:00+01:00", expect="--test-clock")


# ------------------------------------------------------------------ coverage


def _documented():
    """(implemented names, alias -> canonical) from docs/cli.md, all lower case."""
    implemented, alias = set(), {}
    for sec in re.split(r"^### ", DOCS.read_text(), flags=re.M)[1:]:
        name = sec.split("\n", 1)[0].strip().lower()
        for m in re.finditer(r"(?:Short name|Also accepted): ([^.\n]*)", sec):
            for a in re.findall(r"`([^`]+)`", m.group(1)):
                alias[a.lower()] = name
        if "Status: implemented" in sec:
            implemented.add(name)
    return implemented, alias


def _called():
    """Command names this file and the per-area files (`CALLED_ELSEWHERE`) run through `gatehouse`
    (first string argument of ok/fail/run, or the command argument of cli_helpers.cli)."""
    names = set()
    sources = [Path(__file__)] + [Path(__file__).with_name(f) for f in CALLED_ELSEWHERE]
    tree = ast.Module(body=[n for p in sources for n in ast.parse(p.read_text()).body],
                      type_ignores=[])
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in ("ok", "fail", "run") and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                names.add(first.value.lower())
        # cli_helpers.cli(binary, server, "Command", ...)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "cli" \
                and len(node.args) > 2:
            cmd = node.args[2]
            if isinstance(cmd, ast.Constant) and isinstance(cmd.value, str):
                names.add(cmd.value.lower())
    # The `for cmd in ((...), ...)` tables: tuples whose first element is a command name.
    for node in ast.walk(tree):
        if isinstance(node, ast.For) and isinstance(node.iter, ast.Tuple):
            for elt in node.iter.elts:
                if isinstance(elt, ast.Tuple) and elt.elts and isinstance(elt.elts[0], ast.Constant) \
                        and isinstance(elt.elts[0].value, str):
                    names.add(elt.elts[0].value.lower())
    return names


def test_every_implemented_command_is_called():
    implemented, alias = _documented()
    assert len(implemented) > 50, "docs/cli.md parse found too few implemented commands"
    called = {alias.get(n, n) for n in _called()}
    # Names used in rights tables that are plain commands are in `called` too; everything called
    # must be documented as implemented, except the names called to check "Unknown command".
    missing = implemented - called
    assert not missing, f"implemented commands without an e2e call: {sorted(missing)}"
    extra = called - implemented - NOT_IMPLEMENTED_CALLED
    assert not extra, f"called commands not marked implemented in docs/cli.md: {sorted(extra)}"
    assert NOT_IMPLEMENTED_CALLED.isdisjoint(implemented)
