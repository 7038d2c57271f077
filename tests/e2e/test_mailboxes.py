"""Mailbox Administration commands (guide.txt:6174-6411, spec B §3.5) through the real `gatehouse`
client against a running server: create, list, info, rename, delete, ACLs and effective rights,
AUTH, subscription, mailbox aliases, the owner-or-administrator rule, and names that would leave
the account directory. The files the commands make are checked on disk, and the `.mbox` files with
Python's `mailbox`.
"""

import mailbox

from cli_helpers import cli

DENIED = "Not enough access rights"
CLEAR = "PasswordEncryption=clear;"


class G:
    """`gatehouse` as one account: ok() returns the JSON result, fail() the stderr of a failure."""

    def __init__(self, binary, server, user="postmaster", password=None):
        self.binary, self.server, self.user, self.password = binary, server, user, password

    def ok(self, cmd, *args):
        got = cli(self.binary, self.server, cmd, *args, user=self.user, password=self.password,
                  json=True)
        assert not hasattr(got, "returncode"), (
            f"[{self.user}] gatehouse {cmd} {' '.join(args)} exited {got.returncode}: "
            f"{got.stderr.strip()}")
        return got

    def fail(self, cmd, *args, expect=None):
        proc = cli(self.binary, self.server, cmd, *args, user=self.user, password=self.password)
        assert proc.returncode == 1, (
            f"[{self.user}] gatehouse {cmd} {' '.join(args)}: expected exit 1, got "
            f"{proc.returncode}; stdout {proc.stdout!r} stderr {proc.stderr!r}")
        if expect is not None:
            assert expect in proc.stderr, f"{cmd} {args}: {expect!r} not in {proc.stderr!r}"
        return proc.stderr


def setup(gatehouse_bin, server):
    pm = G(gatehouse_bin, server)
    pm.ok("UpdateAccountSettings", "postmaster", "{" + CLEAR + "}")
    pm.ok("SetAccountPassword", "postmaster", "To", server.password)
    pm.ok("CreateAccount", "ann", "{" + CLEAR + "Password=annpw;}")
    pm.ok("CreateAccount", "bob", "{" + CLEAR + "Password=bobpw;}")
    pm.ok("CreateAccount", "solo", "TextMailbox", "{" + CLEAR + "Password=solopw;}")
    return (pm, G(gatehouse_bin, server, "ann", "annpw"), G(gatehouse_bin, server, "bob", "bobpw"))


def test_create_list_rename_delete(server, gatehouse_bin):
    pm, ann, _ = setup(gatehouse_bin, server)
    acct = server.base / "Accounts" / "ann.macnt"
    ann.ok("CREATEMAILBOX", "*", "MAILBOX", "Sent")
    ann.ok("CREATEMAILBOX", "ann", "MAILBOX", "Archive/2024")
    ann.ok("CREATEMAILBOX", "ann", "MAILBOX", "Folder/")
    ann.ok("CREATEMAILBOX", "ann", "MAILBOX", "Big.mdir")
    ann.fail("CREATEMAILBOX", "ann", "MAILBOX", "Sent", expect="already exists")
    assert (acct / "Sent.mbox").is_file()
    assert (acct / "Archive.folder" / "2024.mbox").is_file()
    assert (acct / "Folder.folder").is_dir()
    assert (acct / "Big.mdir").is_dir()

    boxes = ann.ok("LISTMAILBOXES", "*")
    assert set(boxes) == {"Sent", "Archive", "Archive/2024", "Folder", "Big"}
    assert boxes["Archive"] == [] and boxes["Folder"] == []
    assert boxes["Sent"]["Messages"] == "0" and boxes["Big"]["Format"] == "mdir"
    assert set(pm.ok("lstmbx", "ann", "FILTER", "%")) == {"Sent", "Archive", "Folder", "Big"}
    assert set(pm.ok("LISTMAILBOXES", "ann", "FILTER", "Archive/*")) == {"Archive/2024"}

    info = ann.ok("GETMAILBOXINFO", "ann", "MAILBOX", "Sent")
    assert info["Messages"] == "0" and int(info["UIDNext"]) >= 1
    assert len(mailbox.mbox(str(acct / "Sent.mbox"))) == 0

    ann.ok("RENAMEMAILBOX", "ann", "MAILBOXES", "Archive", "INTO", "Old")
    assert set(ann.ok("LISTMAILBOXES", "ann")) == {"Sent", "Old", "Old/2024", "Folder", "Big"}
    assert (acct / "Old.folder" / "2024.mbox").is_file() and not (acct / "Archive.folder").exists()
    ann.ok("RENAMEMAILBOX", "ann", "MAILBOX", "Sent", "INTO", "Old/Sent")
    ann.fail("RENAMEMAILBOX", "ann", "MAILBOX", "Nope", "INTO", "Other", expect="does not exist")

    ann.fail("DELETEMAILBOX", "ann", "MAILBOX", "INBOX", expect="INBOX cannot be deleted")
    ann.ok("DELETEMAILBOX", "ann", "MAILBOX", "Big")
    ann.ok("DELETEMAILBOX", "ann", "MAILBOXES", "Old")
    assert set(ann.ok("LISTMAILBOXES", "ann")) == {"Folder"}
    assert not (acct / "Old.folder").exists() and not (acct / "Big.mdir").exists()

    # A single-mailbox account has its INBOX only.
    assert list(pm.ok("LISTMAILBOXES", "solo")) == ["INBOX"]
    pm.fail("CREATEMAILBOX", "solo", "MAILBOX", "Other", expect="single-mailbox")
    # MaxMailboxes (guide.txt:8771-8773).
    pm.ok("UpdateAccountSettings", "ann", "{MaxMailboxes=1;}")
    ann.ok("CREATEMAILBOX", "ann", "MAILBOX", "One")
    ann.fail("CREATEMAILBOX", "ann", "MAILBOX", "Two", expect="Too many mailboxes")


def test_names_that_leave_the_account_are_refused(server, gatehouse_bin):
    _, ann, _ = setup(gatehouse_bin, server)
    before = sorted(p.name for p in server.base.rglob("*"))
    for name in ("../escape", "/etc/passwd", "a/../../b", ".hidden", "a//b", "~bob/INBOX",
                 "x\\y", "bad\x01name"):
        ann.fail("CREATEMAILBOX", "ann", "MAILBOX", name, expect="Illegal mailbox name")
        ann.fail("RENAMEMAILBOX", "ann", "MAILBOX", "INBOX", "INTO", name)
        ann.fail("DELETEMAILBOX", "ann", "MAILBOX", name, expect="Illegal mailbox name")
    assert sorted(p.name for p in server.base.rglob("*")) == before


def test_acl_rights_and_auth(server, gatehouse_bin):
    pm, ann, bob = setup(gatehouse_bin, server)
    ann.ok("CREATEMAILBOX", "ann", "MAILBOX", "Shared")
    ann.ok("CREATEMAILBOX", "ann", "MAILBOX", "Private")

    # Only the owner or an administrator with the right reaches an account's mailboxes.
    bob.fail("LISTMAILBOXES", "ann", expect=DENIED)
    bob.fail("LISTMAILBOXES", "ann", "AUTH", "bob", expect=DENIED)
    pm.ok("SetAccountRights", "bob", "(Domain)")
    bob.fail("GETMAILBOXACL", "ann", "MAILBOX", "Shared", expect=DENIED)
    pm.ok("SetAccountRights", "bob", "(Domain,CanAccessMailboxes)")
    assert "Shared" in bob.ok("LISTMAILBOXES", "ann")
    pm.ok("SetAccountRights", "bob", "()")

    assert ann.ok("GETMAILBOXACL", "ann", "MAILBOX", "Shared") == {}
    ann.ok("SETMAILBOXACL", "ann", "MAILBOX", "Shared", '{anyone=l;bob="+rsw";"-bob"=w;}')
    assert ann.ok("GETMAILBOXACL", "ann", "MAILBOX", "Shared") == {
        "anyone": "l", "bob": "rsw", "-bob": "w"}
    ann.ok("SETMAILBOXACL", "ann", "MAILBOX", "Shared", '{anyone="-l";bob="+i";}')
    assert ann.ok("GETMAILBOXACL", "ann", "MAILBOX", "Shared") == {"bob": "rswi", "-bob": "w"}
    ann.fail("SETMAILBOXACL", "ann", "MAILBOX", "Shared", "{bob=z;}", expect="Illegal access right")
    ann.fail("GETMAILBOXACL", "ann", "MAILBOX", "Nope", expect="does not exist")

    assert ann.ok("GETMAILBOXRIGHTS", "ann", "MAILBOX", "Shared", "AUTH", "bob") == "rsi"
    assert ann.ok("GETMAILBOXRIGHTS", "ann", "MAILBOX", "Shared", "AUTH", "ann") == "lrswdipca"
    assert ann.ok("GETMAILBOXRIGHTS", "ann", "MAILBOX", "Private", "AUTH", "bob") == ""
    ann.fail("GETMAILBOXRIGHTS", "ann", "MAILBOX", "Shared", expect="AUTH")

    # AUTH bob: Lookup decides the listing, Select the info, Administer the ACL, Create the create.
    assert ann.ok("LISTMAILBOXES", "ann", "AUTH", "bob") == {}
    ann.ok("SETMAILBOXACL", "ann", "MAILBOX", "Shared", '{bob="+l";}')
    listed = ann.ok("LISTMAILBOXES", "ann", "AUTH", "bob")
    assert list(listed) == ["Shared"] and listed["Shared"]["Messages"] == "0"
    assert ann.ok("GETMAILBOXINFO", "ann", "MAILBOX", "Shared", "AUTH", "bob")["Messages"] == "0"
    ann.fail("GETMAILBOXINFO", "ann", "MAILBOX", "Private", "AUTH", "bob", expect=DENIED)
    ann.fail("GETMAILBOXACL", "ann", "MAILBOX", "Shared", "AUTH", "bob", expect=DENIED)
    ann.fail("SETMAILBOXACL", "ann", "MAILBOX", "Shared", "AUTH", "bob", "{bob=a;}", expect=DENIED)
    ann.fail("CREATEMAILBOX", "ann", "MAILBOX", "Shared/Sub", "AUTH", "bob", expect=DENIED)
    ann.ok("SETMAILBOXACL", "ann", "MAILBOX", "Shared", '{bob="+c";}')
    ann.ok("CREATEMAILBOX", "ann", "MAILBOX", "Shared/Sub", "AUTH", "bob")
    # A submailbox inherits its parent's ACL; a rename keeps it.
    acl = ann.ok("GETMAILBOXACL", "ann", "MAILBOX", "Shared")
    assert ann.ok("GETMAILBOXACL", "ann", "MAILBOX", "Shared/Sub") == acl
    ann.fail("DELETEMAILBOX", "ann", "MAILBOX", "Shared/Sub", "AUTH", "bob", expect=DENIED)
    ann.ok("RENAMEMAILBOX", "ann", "MAILBOX", "Shared/Sub", "INTO", "Shared/Sub2")
    assert ann.ok("GETMAILBOXACL", "ann", "MAILBOX", "Shared/Sub2") == acl
    ann.ok("SETMAILBOXACL", "ann", "MAILBOX", "Shared/Sub2", '{bob="+d";}')
    ann.ok("DELETEMAILBOX", "ann", "MAILBOX", "Shared/Sub2", "AUTH", "bob")


def test_subscription_and_aliases(server, gatehouse_bin):
    pm, ann, bob = setup(gatehouse_bin, server)
    assert ann.ok("GETACCOUNTSUBSCRIPTION", "*") == []
    ann.ok("SETACCOUNTSUBSCRIPTION", "*", '(INBOX,"~bob/INBOX")')
    assert pm.ok("GETACCOUNTSUBSCRIPTION", "ann") == ["INBOX", "~bob/INBOX"]
    bob.fail("GETACCOUNTSUBSCRIPTION", "ann", expect=DENIED)
    bob.fail("SETACCOUNTSUBSCRIPTION", "ann", "()", expect=DENIED)

    assert ann.ok("GETMAILBOXALIASES", "*") == {}
    ann.ok("SETMAILBOXALIASES", "*", '{salesBox="~sales/INBOX";boss="~chief";}')
    assert ann.ok("GETMAILBOXALIASES", "ann") == {"salesBox": "~sales/INBOX", "boss": "~chief"}
    ann.fail("SETMAILBOXALIASES", "*", '{"a/b"=x;}', expect="top level")
    ann.fail("SETMAILBOXALIASES", "*", '{".."=x;}', expect="Illegal mailbox name")
    bob.fail("SETMAILBOXALIASES", "ann", "{}", expect=DENIED)

    # Both survive a restart (they live in the account's .info file).
    server.stop()
    server.start()
    assert ann.ok("GETACCOUNTSUBSCRIPTION", "ann") == ["INBOX", "~bob/INBOX"]
    assert ann.ok("GETMAILBOXALIASES", "ann") == {"salesBox": "~sales/INBOX", "boss": "~chief"}


def test_local_delivery_module_settings(server, gatehouse_bin):
    """The LOCAL module (Local Delivery) is registered with its settings (guide.txt:11990-12060)."""
    pm, _, _ = setup(gatehouse_bin, server)
    got = pm.ok("GetModule", "LOCAL")
    assert got["Processes"] == "1" and got["AccountDetail"] == "Enabled", got
    assert got["DirectMailbox"] == "YES", got
    pm.ok("UpdateModule", "LOCAL", '{AccountDetail="Direct Mailbox";LogLevel=5;}')
    assert pm.ok("GetModule", "LOCAL")["AccountDetail"] == "Direct Mailbox"
    pm.fail("UpdateModule", "LOCAL", "{AccountDetail=maybe;}", expect="AccountDetail")
    pm.fail("UpdateModule", "LOCAL", "{Processes=many;}", expect="Processes")
    assert pm.ok("GetModule", "LOCAL")["AccountDetail"] == "Direct Mailbox"
