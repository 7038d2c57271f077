"""The IMAP module (issue 6) driven by Python's imaplib and curl: RFC 3501 commands in clear, on
993 and after STARTTLS, SASL, two sessions seeing each other's changes, IDLE seeing an APPEND
from another session within a second, the extensions, and bad input.
"""

import imaplib
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from cli_helpers import cli

MSG = (b"From: Alice Example <a@example.test>\r\nTo: bob@example.test\r\nSubject: hello imap\r\n"
       b"Date: Thu, 26 Nov 2026 10:00:00 +0000\r\nMessage-ID: <m1@example.test>\r\n\r\n"
       b"first body line\r\nsecond line\r\n")
MULTI = (b"From: c@example.test\r\nTo: bob@example.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=\"XX\"\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n"
         b"part one\r\n--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
         b"AAAA\r\n--XX--\r\n")


@pytest.fixture
def imap(server, gatehouse_bin):
    cli(gatehouse_bin, server, "CreateAccount", "bob", "{Password=pw;}", check=True)
    cli(gatehouse_bin, server, "CreateAccount", "cat", "{PasswordEncryption=clear;Password=cpw;}",
        check=True)
    return server


def insecure():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(server):
    return imaplib.IMAP4("127.0.0.1", server.port(143), timeout=10)


def login(server, user="bob", password="pw"):
    m = connect(server)
    m.login(user, password)
    return m


def ok(r):
    assert r[0] == "OK", r
    return r[1]


def test_capability_login_logout(imap):
    m = connect(imap)
    caps = m.capabilities
    for c in ("IMAP4REV1", "STARTTLS", "IDLE", "UIDPLUS", "LITERAL+", "AUTH=PLAIN", "SASL-IR"):
        assert c in caps, caps
    with pytest.raises(imaplib.IMAP4.error):
        m.login("bob", "wrong")
    ok(m.login("bob", "pw"))
    ok(m.noop())
    assert m.logout()[0] == "BYE"


def test_tls_on_993_and_starttls(imap):
    m = imaplib.IMAP4_SSL("127.0.0.1", imap.port(993), ssl_context=insecure(), timeout=10)
    ok(m.login("bob", "pw"))
    ok(m.select("INBOX"))
    m.logout()
    m = connect(imap)
    ok(m.starttls(ssl_context=insecure()))
    assert "STARTTLS" not in m.capabilities
    ok(m.login("bob", "pw"))
    m.logout()


def test_authenticate(imap):
    m = connect(imap)
    ok(m.authenticate("PLAIN", lambda _: b"\0bob\0pw"))
    m.logout()
    m = connect(imap)
    ok(m.login_cram_md5("cat", "cpw"))
    m.logout()
    m = connect(imap)
    answers = iter([b"bob", b"pw"])
    ok(m.authenticate("LOGIN", lambda _: next(answers)))
    m.logout()


def test_mailbox_commands(imap):
    m = login(imap)
    ok(m.create("Work"))
    ok(m.create("Work/Old"))
    ok(m.create("Sent"))
    names = b"\n".join(ok(m.list()))
    assert b'"INBOX"' in names and b'"Work/Old"' in names and b"\\HasChildren" in names
    assert b"\\Sent" in names
    assert b'"/"' in names
    top = b"\n".join(ok(m.list('""', "%")))
    assert b'"Work/Old"' not in top and b'"Work"' in top
    ok(m.rename("Work/Old", "Archive"))
    ok(m.subscribe("Archive"))
    assert b"Archive" in b"\n".join(ok(m.lsub()))
    ok(m.unsubscribe("Archive"))
    ok(m.delete("Archive"))
    assert m.delete("INBOX")[0] == "NO"
    # RFC 3501 §6.3.5: renaming INBOX moves its messages and leaves it empty.
    ok(m.append("INBOX", None, None, MSG))
    ok(m.rename("INBOX", "Old"))
    assert ok(m.status("INBOX", "(MESSAGES)"))[0].endswith(b"(MESSAGES 0)")
    assert ok(m.status("Old", "(MESSAGES)"))[0].endswith(b"(MESSAGES 1)")
    assert m.select("Nope")[0] == "NO"
    ok(m.append("Work", r"(\Seen)", imaplib.Time2Internaldate(time.time()), MSG))
    st = ok(m.status("Work", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY INTERNALSIZE OLDEST)"))[0]
    assert b"MESSAGES 1" in st and b"UNSEEN 0" in st and b"OLDEST" in st, st
    assert m.append("Missing", None, None, MSG)[1][0].startswith(b"[TRYCREATE]")
    m.logout()


def test_select_fetch_search_store(imap):
    m = login(imap)
    ok(m.append("INBOX", None, None, MSG))
    ok(m.append("INBOX", r"(\Flagged)", None, MULTI))
    typ, data = m.select("INBOX")
    assert typ == "OK" and data == [b"2"]
    assert m.untagged_responses.get("UIDVALIDITY")
    assert m.response("PERMANENTFLAGS")[1][0]
    assert ok(m.search(None, "ALL")) == [b"1 2"]
    assert ok(m.search(None, "FLAGGED")) == [b"2"]
    assert ok(m.search(None, "SUBJECT", '"hello imap"')) == [b"1"]
    assert ok(m.search(None, "NOT", "FLAGGED")) == [b"1"]
    assert ok(m.search(None, "OR", "FLAGGED", "BODY", "second")) == [b"1 2"]
    assert ok(m.search(None, "SINCE", "1-Jan-2020", "LARGER", "10")) == [b"1 2"]
    assert ok(m.search(None, "UNSEEN")) == [b"1 2"]
    data = ok(m.fetch("1", "(FLAGS UID INTERNALDATE RFC822.SIZE ENVELOPE BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))
    head = data[0][0]
    assert b"RFC822.SIZE %d" % len(MSG) in head and b'"hello imap"' in head, head
    assert data[0][1].startswith(b"Subject: hello imap")
    assert ok(m.search(None, "SEEN")) == [b""]
    data = ok(m.fetch("1", "(BODY[])"))
    assert data[0][1] == MSG
    assert ok(m.search(None, "SEEN")) == [b"1"]
    assert ok(m.fetch("1", "(BODY.PEEK[TEXT]<0.5>)"))[0][1] == b"first"
    assert ok(m.fetch("1", "(RFC822.HEADER)"))[0][1].endswith(b"\r\n\r\n")
    bs = ok(m.fetch("2", "(BODYSTRUCTURE)"))[0]
    assert b'"MIXED"' in bs and b'"OCTET-STREAM"' in bs, bs
    assert ok(m.fetch("2", "(BODY.PEEK[1])"))[0][1] == b"part one"
    assert ok(m.fetch("2", "(BODY.PEEK[2])"))[0][1] == b"AAAA"
    assert b"\\Deleted" in ok(m.store("1", "+FLAGS", r"(\Deleted)"))[0]
    ok(m.store("2", "-FLAGS.SILENT", r"(\Flagged)"))
    assert ok(m.search(None, "FLAGGED")) == [b""]
    uid = ok(m.fetch("2", "(UID)"))[0].split()[-1].rstrip(b")")
    ok(m.create("Copies"))
    # imaplib's uid() keeps only untagged data; the tagged line carries COPYUID (RFC 4315).
    typ, data = m._simple_command("UID", "COPY", uid.decode(), "Copies")
    assert typ == "OK" and data[0].startswith(b"[COPYUID "), data
    ok(m.expunge())
    assert ok(m.search(None, "ALL")) == [b"1"]
    ok(m.check())
    ok(m.close())
    ok(m.select("Copies", readonly=True))
    assert m.store("1", "+FLAGS", r"(\Seen)")[0] == "NO"
    ok(m.unselect())
    m.logout()


def test_move_namespace_quota_id_enable(imap, gatehouse_bin):
    cli(gatehouse_bin, imap, "UpdateAccountSettings", "bob", "{MaxAccountSize=10M;}", check=True)
    m = login(imap)
    ok(m.append("INBOX", None, None, MSG))
    ok(m.create("Trash"))
    m.select("INBOX")
    typ, data = m._simple_command("MOVE", "1", "Trash")
    assert typ == "OK", data
    assert ok(m.search(None, "ALL")) == [b""]
    assert ok(m.status("Trash", "(MESSAGES)"))[0].endswith(b"(MESSAGES 1)")
    assert ok(m.namespace())[0] == b'(("" "/")) (("~" "/")) NIL'
    typ, data = m.getquotaroot("INBOX")
    assert typ == "OK", data
    assert data[1][0] == b'"" (STORAGE 0 10240)', data
    typ, data = m.xatom("ID", "NIL")
    assert typ == "OK"
    assert m.untagged_responses.pop("ID")[0].startswith(b'("name" "Gatehouse"')
    ok(m.unselect())
    ok(m.enable("UTF8=ACCEPT"))
    m.logout()


def test_two_sessions_see_flags_and_expunges(imap):
    a = login(imap)
    ok(a.append("INBOX", None, None, MSG))
    ok(a.append("INBOX", None, None, MSG))
    b = login(imap)
    a.select("INBOX")
    b.select("INBOX")
    ok(a.store("1", "+FLAGS", r"(\Flagged)"))
    ok(b.noop())
    fetches = b.untagged_responses.pop("FETCH", [])
    assert any(b"\\Flagged" in f for f in fetches), fetches
    ok(a.store("2", "+FLAGS", r"(\Deleted)"))
    ok(a.expunge())
    ok(b.noop())
    assert b.untagged_responses.pop("EXPUNGE", []) == [b"2"]
    ok(a.append("INBOX", None, None, MSG))
    ok(b.noop())
    assert b.untagged_responses.pop("EXISTS", [])[-1] == b"2"
    a.logout()
    b.logout()


def test_idle_sees_append_within_a_second(imap):
    watcher = socket.create_connection(("127.0.0.1", imap.port(143)), timeout=5)
    f = watcher.makefile("rb")
    f.readline()
    watcher.sendall(b"a LOGIN bob pw\r\n")
    while not f.readline().startswith(b"a OK"):
        pass
    watcher.sendall(b"b SELECT INBOX\r\n")
    while not f.readline().startswith(b"b OK"):
        pass
    watcher.sendall(b"c IDLE\r\n")
    assert f.readline().startswith(b"+")
    other = login(imap)
    start = time.monotonic()
    ok(other.append("INBOX", None, None, MSG))
    line = f.readline()
    assert line == b"* 1 EXISTS\r\n", line
    assert time.monotonic() - start < 1.0
    watcher.sendall(b"DONE\r\n")
    while True:
        line = f.readline()
        if line.startswith(b"c "):
            break
    assert line.startswith(b"c OK")
    other.logout()
    watcher.close()


def test_bad_input_keeps_the_session(imap):
    s = socket.create_connection(("127.0.0.1", imap.port(143)), timeout=5)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"x1 FROBNICATE\r\n")
    assert f.readline().startswith(b"x1 BAD")
    s.sendall(b"x2 FETCH 1 (FLAGS)\r\n")
    assert f.readline().startswith(b"x2 BAD")
    s.sendall(b"A" * 9000 + b"\r\n")
    assert f.readline().startswith(b"* BAD")
    s.sendall(b"x3 LOGIN bob {999999999}\r\n")
    assert f.readline().startswith(b"x3 NO [TOOBIG]")
    s.sendall(b"x4 LOGIN bob {2+}\r\npw\r\n")
    assert f.readline().startswith(b"x4 OK")
    s.sendall(b"x5 SEARCH " + b"(" * 40 + b"ALL" + b")" * 40 + b"\r\n")
    assert f.readline().startswith(b"x5 BAD")
    s.sendall(b"x6 SELECT ~other/INBOX\r\n")
    assert f.readline().startswith(b"x6 NO")
    s.sendall(b"x7 NOOP\r\n")
    assert f.readline().startswith(b"x7 OK")
    s.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_fetches_a_message(imap):
    m = login(imap)
    ok(m.append("INBOX", None, None, MSG))
    m.logout()
    url = f"imap://127.0.0.1:{imap.port(143)}/INBOX;UID=1"
    r = subprocess.run(["curl", "-s", "--max-time", "10", "-u", "bob:pw", url],
                       capture_output=True, check=True)
    assert r.stdout == MSG


@pytest.mark.skipif(shutil.which("mutt") is None or shutil.which("tmux") is None,
                    reason="mutt or tmux not installed")
def test_mutt_opens_inbox_and_reads(imap, tmp_path):
    m = login(imap)
    ok(m.append("INBOX", None, None, MSG))
    m.logout()
    rc = tmp_path / "muttrc"
    rc.write_text(
        f'set spoolfile="imap://bob@127.0.0.1:{imap.port(143)}/INBOX"\n'
        'set imap_pass="pw"\nset ssl_starttls=no\nset ssl_force_tls=no\n'
        'set header_cache=""\nset message_cachedir=""\nset pager_stop=yes\n'
        'set mail_check=60\nset imap_passive=yes\nset confirmappend=no\n'
        f'set folder="{tmp_path}"\n')
    session = f"gh-imap-{imap.port(143)}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "30",
                    f"TERM=xterm mutt -n -F {rc}"], check=True)
    try:
        def screen():
            return subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                                  capture_output=True, text=True).stdout

        def wait_for(text):
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                s = screen()
                if text in s:
                    return s
                time.sleep(0.2)
            raise AssertionError(f"{text!r} not on screen:\n{screen()}")

        wait_for("hello imap")
        subprocess.run(["tmux", "send-keys", "-t", session, "Enter"], check=True)
        wait_for("first body line")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session])


def test_acl_sharing_between_accounts(imap, gatehouse_bin):
    cli(gatehouse_bin, imap, "CreateAccount", "dan", "{Password=dpw;}", check=True)
    bob = login(imap)
    ok(bob.append("INBOX", None, None, MSG))
    assert "ACL" in bob.capabilities or "ACL" in ok(bob.capability())[0].decode()
    cat = login(imap, "cat", "cpw")
    dan = login(imap, "dan", "dpw")
    # No rights yet: the mailbox looks absent.
    assert cat.select("~bob/INBOX")[0] == "NO"
    ok(bob.setacl("INBOX", "cat", "lrs"))
    acl = ok(bob.getacl("INBOX"))[0]
    assert b'"cat" "lrs"' in acl, acl
    # IMAP and the CLI share one ACL store.
    shown = cli(gatehouse_bin, imap, "GETMAILBOXACL", "bob", "MAILBOX", "INBOX", check=True).stdout
    assert "cat" in shown and "lrs" in shown, shown
    assert ok(bob.myrights("INBOX"))[0].endswith(b'"lrswipcda"')
    assert ok(cat.select("~bob/INBOX")) == [b"1"]
    assert ok(cat.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])"))[0][1].startswith(b"Subject: hello imap")
    ok(cat.store("1", "+FLAGS", r"(\Seen)"))
    assert cat.store("1", "+FLAGS", r"(\Deleted)")[0] == "NO"
    assert cat.setacl("~bob/INBOX", "cat", "lrswipcda")[0] == "NO"
    assert ok(cat.myrights("~bob/INBOX"))[0].endswith(b'"lrs"')
    assert b'"~bob/INBOX"' in b"\n".join(ok(cat.list('""', "~bob/*")))
    assert ok(dan.list('""', "~bob/*")) == [None]
    ok(cat.subscribe("~bob/INBOX"))
    assert b"~bob/INBOX" in b"\n".join(ok(cat.lsub()))
    ok(cat.close())
    # The flag cat set is bob's too.
    bob.select("INBOX")
    assert ok(bob.search(None, "SEEN")) == [b"1"]
    # An account without rights is refused.
    assert dan.select("~bob/INBOX")[0] == "NO"
    assert dan.status("~bob/INBOX", "(MESSAGES)")[0] == "NO"
    assert dan.append("~bob/INBOX", None, None, MSG)[0] == "NO"
    ok(bob.deleteacl("INBOX", "cat"))
    assert cat.select("~bob/INBOX")[0] == "NO"
    for m in (bob, cat, dan):
        m.logout()


def test_idle_sees_delivered_mail(imap):
    """Mail delivered by the server (PIPE drop → queue → Local Delivery) while a client IDLEs
    shows up as EXISTS: delivery and IMAP share the one mailbox manager."""
    from mail_helpers import drop

    watcher = socket.create_connection(("127.0.0.1", imap.port(143)), timeout=30)
    f = watcher.makefile("rb")
    f.readline()
    for line in (b"a LOGIN bob pw\r\n", b"b SELECT INBOX\r\n"):
        watcher.sendall(line)
        tag = line[:1]
        while not f.readline().startswith(tag + b" OK"):
            pass
    watcher.sendall(b"c IDLE\r\n")
    assert f.readline().startswith(b"+")
    drop(imap, "idle", "Return-Path: <s@example.test>\nFrom: s@example.test\n"
                       "To: bob@example.test\nSubject: delivered\n\nhello\n")
    assert f.readline() == b"* 1 EXISTS\r\n"
    watcher.sendall(b"DONE\r\n")
    watcher.close()


def test_keywords_are_kept_searched_and_seen_by_others(imap):
    a = login(imap)
    ok(a.append("INBOX", r"(\Seen $Forwarded)", None, MSG))
    ok(a.append("INBOX", None, None, MSG))
    b = login(imap)
    typ, _ = a.select("INBOX")
    assert typ == "OK"
    flags = a.untagged_responses.pop("FLAGS")[-1]
    assert b"$Forwarded" in flags, flags
    perm = a.untagged_responses.pop("PERMANENTFLAGS")[-1]
    assert b"\\*" in perm and b"$Forwarded" in perm, perm
    b.select("INBOX")
    ok(a.store("2", "+FLAGS", "(Work $Junk)"))
    fetched = ok(a.fetch("2", "(FLAGS)"))[0]
    assert b"Work" in fetched and b"$Junk" in fetched, fetched
    assert ok(a.search(None, "KEYWORD", "work")) == [b"2"]
    assert ok(a.search(None, "UNKEYWORD", "$Junk")) == [b"1"]
    assert ok(a.search(None, "KEYWORD", "never-used")) == [b""]
    # The other session hears of the new keywords: a new FLAGS list and the message's flags.
    ok(b.noop())
    assert b"Work" in b.untagged_responses.pop("FLAGS", [b""])[-1]
    assert any(b"$Junk" in f for f in b.untagged_responses.pop("FETCH", []))
    ok(b.store("2", "-FLAGS", "(Work)"))
    ok(a.noop())
    fetches = a.untagged_responses.pop("FETCH", [])
    assert fetches and b"Work" not in fetches[-1] and b"$Junk" in fetches[-1], fetches
    # A keyword must be an atom; an unknown system flag is refused.
    with pytest.raises(imaplib.IMAP4.error, match="unknown system flag"):
        a._simple_command("STORE", "1", "+FLAGS", r"(\Bogus)")
    # Keywords survive a server restart and are copied along.
    ok(a.create("Kept"))
    ok(a.copy("2", "Kept"))
    a.logout()
    b.logout()
    imap.stop()
    imap.start()
    c = login(imap)
    c.select("Kept")
    assert b"$Junk" in ok(c.fetch("1", "(FLAGS)"))[0]
    c.select("INBOX")
    assert b"$Forwarded" in ok(c.fetch("1", "(FLAGS)"))[0]
    c.logout()


def test_condstore(imap):
    m = login(imap)
    assert "CONDSTORE" in m.capabilities
    for _ in range(3):
        ok(m.append("INBOX", None, None, MSG))
    typ, data = m._simple_command("ENABLE", "CONDSTORE")
    assert typ == "OK", data
    assert m.untagged_responses.pop("ENABLED") == [b"CONDSTORE"]
    typ, data = m._simple_command("SELECT", "INBOX", "(CONDSTORE)")
    assert typ == "OK", data
    m.state = "SELECTED"  # imaplib tracks state only for its own select()
    highest = int(m.untagged_responses.pop("HIGHESTMODSEQ")[-1])
    st = ok(m.status("INBOX", "(HIGHESTMODSEQ)"))[0]
    assert st.endswith(b"(HIGHESTMODSEQ %d)" % highest), st
    typ, data = m._simple_command("STORE", "2", "+FLAGS", r"(\Flagged)")
    assert typ == "OK", data
    fetches = m.untagged_responses.pop("FETCH")
    assert b"MODSEQ (%d)" % (highest + 1) in fetches[-1], fetches
    # CHANGEDSINCE returns only what changed after the given mod-sequence.
    typ, data = m._simple_command("FETCH", "1:*", "(FLAGS)", "(CHANGEDSINCE %d)" % highest)
    assert typ == "OK", data
    fetches = m.untagged_responses.pop("FETCH")
    assert len(fetches) == 1 and fetches[0].startswith(b"2 (FLAGS"), fetches
    assert b"MODSEQ" in fetches[0]
    # UNCHANGEDSINCE: message 2 changed after `highest`, so it is left alone and reported.
    typ, data = m._simple_command("STORE", "1:3", "(UNCHANGEDSINCE %d)" % highest,
                                  "+FLAGS.SILENT", r"(\Seen)")
    assert typ == "OK" and data[0].startswith(b"[MODIFIED 2]"), data
    fetches = m.untagged_responses.pop("FETCH")
    assert sorted(f.split()[0] for f in fetches) == [b"1", b"3"], fetches
    assert b"\\Seen" not in ok(m.fetch("2", "(FLAGS)"))[0]
    # SEARCH MODSEQ reports the highest mod-sequence found.
    typ, data = m._simple_command("UID", "SEARCH", "MODSEQ", str(highest + 2))
    assert typ == "OK", data
    found = m.untagged_responses.pop("SEARCH")[-1]
    assert found == b"1 3 (MODSEQ %d)" % (highest + 2), found
    # Mod-sequences persist: after a restart HIGHESTMODSEQ is where it was.
    m.logout()
    imap.stop()
    imap.start()
    m = login(imap)
    st = ok(m.status("INBOX", "(HIGHESTMODSEQ)"))[0]
    assert st.endswith(b"(HIGHESTMODSEQ %d)" % (highest + 2)), st
    m.logout()


def test_public_namespace_and_mailbox_aliases(imap, gatehouse_bin):
    def admin(*args):
        cli(gatehouse_bin, imap, *args, check=True)

    # Before a `public` account exists there is no shared namespace.
    bob = login(imap)
    assert ok(bob.namespace())[0] == b'(("" "/")) (("~" "/")) NIL'
    admin("CreateAccount", "public", "{Password=ppw;}")
    admin("CreateAccount", "chief", "{Password=chpw;}")
    admin("CREATEMAILBOX", "public", "MAILBOX", "news")
    admin("CREATEMAILBOX", "public", "MAILBOX", "staff")
    admin("SETMAILBOXACL", "public", "MAILBOX", "news", "{anyone=lr;}")
    admin("CREATEMAILBOX", "chief", "MAILBOX", "Pending")
    admin("CREATEMAILBOX", "chief", "MAILBOX", "Private")
    admin("SETMAILBOXACL", "chief", "MAILBOX", "Pending", "{bob=lrs;}")
    chief = login(imap, "chief", "chpw")
    ok(chief.append("INBOX", None, None, MSG))
    admin("SETMAILBOXACL", "chief", "MAILBOX", "INBOX", "{bob=lrsw;}")
    ok(chief.append("Pending", None, None, MSG))
    pub = login(imap, "public", "ppw")
    ok(pub.append("news", None, None, MSG))
    assert ok(bob.namespace())[0] == b'(("" "/")) (("~" "/")) (("~public/" "/"))'
    listed = b"\n".join(ok(bob.list('""', "~public/*")))
    assert b'"~public/news"' in listed and b"staff" not in listed, listed
    assert ok(bob.select("~public/news", readonly=True)) == [b"1"]
    ok(bob.close())
    # Mailbox aliases (guide.txt:9491-9522): one to a mailbox, one to a whole account, one to a
    # mailbox bob may not see.
    admin("SETMAILBOXALIASES", "bob",
          '{boss="~chief";pubNews="~public/news";secret="~chief/Private";}')
    listed = b"\n".join(ok(bob.list('""', "*")))
    assert b'(\\Noselect \\HasChildren) "/" "boss"' in listed, listed
    assert b'"boss/INBOX"' in listed and b'"boss/Pending"' in listed, listed
    assert b"Private" not in listed and b"secret" not in listed, listed
    assert b'"pubNews"' in listed, listed
    assert ok(bob.select("boss/Pending")) == [b"1"]
    ok(bob.store("1", "+FLAGS", r"(\Seen)"))
    assert bob.select("boss")[0] == "NO"
    assert bob.select("secret")[0] == "NO"
    assert bob.create("boss/New")[0] == "NO"
    assert bob.create("pubNews")[0] == "NO"
    assert ok(bob.status("pubNews", "(MESSAGES)"))[0].endswith(b"(MESSAGES 1)")
    # The alias names the owner's mailbox: chief sees bob's \Seen.
    chief.select("Pending")
    assert ok(chief.search(None, "SEEN")) == [b"1"]
    # A mailbox granted later shows up under the alias at once.
    admin("SETMAILBOXACL", "chief", "MAILBOX", "Private", "{bob=lr;}")
    assert b'"boss/Private"' in b"\n".join(ok(bob.list('""', "boss/%")))
    for m in (bob, chief, pub):
        m.logout()


def test_enabled_services_gate_imap_and_pop_logins(imap, gatehouse_bin):
    import poplib
    cli(gatehouse_bin, imap, "CreateAccount", "poponly", "{Password=pw;AccessModes=(POP);}",
        check=True)
    cli(gatehouse_bin, imap, "CreateAccount", "imaponly", "{Password=pw;AccessModes=(IMAP);}",
        check=True)
    m = connect(imap)
    with pytest.raises(imaplib.IMAP4.error):
        m.login("poponly", "pw")
    m.logout()
    login(imap, "imaponly", "pw").logout()
    p = poplib.POP3("127.0.0.1", imap.port(110), timeout=10)
    p.user("imaponly")
    with pytest.raises(poplib.error_proto):
        p.pass_("pw")
    p.quit()
    p = poplib.POP3("127.0.0.1", imap.port(110), timeout=10)
    p.user("poponly")
    assert p.pass_("pw").startswith(b"+OK")
    p.quit()
    # Changing the setting takes effect at the next login.
    cli(gatehouse_bin, imap, "UpdateAccountSettings", "poponly", "{AccessModes=(POP,IMAP);}",
        check=True)
    login(imap, "poponly", "pw").logout()


def test_keywords_and_modseqs_survive_kill9(imap):
    """Every acknowledged STORE is on disk: after `kill -9` the keywords are there and
    HIGHESTMODSEQ is not below any mod-sequence a client was shown."""
    m = login(imap)
    for _ in range(5):
        ok(m.append("INBOX", None, None, MSG))
    typ, data = m._simple_command("SELECT", "INBOX", "(CONDSTORE)")
    assert typ == "OK", data
    m.state = "SELECTED"
    seen = 0
    for i in range(40):
        typ, data = m._simple_command("STORE", str(i % 5 + 1), "+FLAGS", f"(kw{i})")
        assert typ == "OK", data
        for f in m.untagged_responses.pop("FETCH"):
            seen = max(seen, int(f.split(b"MODSEQ (")[1].split(b")")[0]))
    imap.kill9()
    imap.start()
    m = login(imap)
    st = ok(m.status("INBOX", "(HIGHESTMODSEQ)"))[0]
    assert int(st.rsplit(b" ", 1)[1].rstrip(b")")) >= seen, (st, seen)
    m.select("INBOX")
    flags = b" ".join(ok(m.fetch("1:5", "(FLAGS)")))
    for i in range(40):
        assert b"kw%d" % i in flags, (i, flags)
    m.logout()
