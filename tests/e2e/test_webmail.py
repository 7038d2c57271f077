"""WebUser / WebMail (issue 9): curl for sessions, CSRF and path checks; headless Chromium for the
user's tour (attachment download, compose with attachment, reply, move, vacation). Effects are
checked with clients nobody here wrote: imaplib, smtplib and the `gatehouse` CLI client.
Screenshots go to $GATEHOUSE_SCREENSHOTS, else tests/out/screenshots (printed by the run)."""

import email
import email.utils
import imaplib
import os
import re
import shutil
import smtplib
import struct
import subprocess
import time
import zlib
from email.message import EmailMessage
from pathlib import Path

import pytest

from cli_helpers import cli
from webdriver import ELEMENT

SHOTS = Path(os.environ.get("GATEHOUSE_SCREENSHOTS")
             or Path(__file__).resolve().parents[1] / "out" / "screenshots")
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


def curl(*args, interface=None):
    """Runs curl; returns (status, body, headers-text)."""
    cmd = ["curl", "-s", "-S", "-D", "/dev/stderr", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20"]
    if interface:
        cmd += ["--interface", interface]
    p = subprocess.run(cmd + list(args), capture_output=True, check=True)
    out = p.stdout.decode("utf-8", "replace")
    body, _, code = out.rpartition("\n")
    return int(code), body, p.stderr.decode("utf-8", "replace")


def base(server):
    return f"http://127.0.0.1:{server.port(8100)}"


def make_user(gatehouse_bin, server, name, password, realname=""):
    settings = f"{{Password={password};PasswordEncryption=clear;RealName=\"{realname or name}\";}}"
    cli(gatehouse_bin, server, "CreateAccount", f"{name}@example.test", settings, check=True)


def login(server, user, password, interface=None):
    """Logs in with curl; returns the session id."""
    code, _, headers = curl("-d", f"username={user}&password={password}", base(server) + "/",
                            interface=interface)
    assert code == 303, (code, headers)
    m = re.search(r"(?im)^location: /Session/([^/\s]+)/Mailboxes\.wssp", headers)
    assert m, headers
    return m.group(1)


def csrf_of(html):
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def deliver(server, to, msg):
    with smtplib.SMTP("127.0.0.1", server.port(25), timeout=20) as s:
        s.send_message(msg, to_addrs=[to])


def message_with_attachment(subject, sender="carol@outside.test", to="u1@example.test",
                            filename="report.pdf", data=PDF):
    m = EmailMessage()
    m["From"] = f"Carol <{sender}>"
    m["To"] = to
    m["Subject"] = subject
    m["Message-ID"] = f"<{subject.replace(' ', '.')}@outside.test>"
    m.set_content("Hello,\nthe report is attached.\nCarol\n")
    m.add_attachment(data, maintype="application", subtype="pdf", filename=filename)
    return m


def wait_for(predicate, what, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}", pytrace=False)
        time.sleep(0.2)


def imap_find(server, user, password, subject, mailbox="INBOX"):
    """The messages of a mailbox whose Subject holds `subject`, read over IMAP (imaplib)."""
    with imaplib.IMAP4("127.0.0.1", server.port(143)) as c:
        c.login(user, password)
        typ, _ = c.select(mailbox)
        if typ != "OK":
            return []
        typ, data = c.search(None, "SUBJECT", f'"{subject}"')
        found = []
        for num in data[0].split():
            typ, parts = c.fetch(num, "(RFC822)")
            found.append(email.message_from_bytes(parts[0][1]))
        return found


@pytest.fixture
def users(server, gatehouse_bin):
    make_user(gatehouse_bin, server, "u1", "pw-one", "User One")
    make_user(gatehouse_bin, server, "u2", "pw-two", "User Two")
    return server


# ------------------------------------------------------------------ curl: sessions and security


def test_login_session_is_bound_to_the_address_and_ends_with_bye(users):
    server = users
    code, body, headers = curl(base(server) + "/")
    assert code == 200 and 'name="password"' in body and "example.test" in body
    assert "content-security-policy: default-src 'none'" in headers.lower()
    code, body, _ = curl("-d", "username=u1&password=wrong", base(server) + "/")
    assert code == 401 and "/Session/" not in body
    sid = login(server, "u1", "pw-one")
    assert len(sid) >= 32
    url = f"{base(server)}/Session/{sid}/Mailboxes.wssp"
    code, body, headers = curl(url)
    assert code == 200 and "INBOX" in body and "u1@example.test" in body
    assert "referrer-policy: no-referrer" in headers.lower()
    # The same session from another address is disconnected (guide.txt:15007-15016) ...
    code, body, _ = curl(url, interface="127.0.0.2")
    assert code == 403 and "session has ended" in body and "INBOX" not in body
    # ... and still works from its own.
    code, _, _ = curl(url)
    assert code == 200
    code, body, _ = curl(f"{base(server)}/Session/{sid}/Bye.wssp")
    assert code == 200 and "logged out" in body
    code, _, _ = curl(url)
    assert code == 403
    # A made-up session id is nothing.
    code, _, _ = curl(f"{base(server)}/Session/{'A' * 32}/Mailboxes.wssp")
    assert code == 403


def test_host_name_picks_the_domain(users, gatehouse_bin):
    server = users
    cli(gatehouse_bin, server, "CreateDomain", "client.test", check=True)
    cli(gatehouse_bin, server, "CreateAccount", "ann@client.test", "{Password=ann-pw;PasswordEncryption=clear;}",
        check=True)
    code, body, _ = curl("-H", "Host: client.test", base(server) + "/")
    assert code == 200 and "Log in to client.test" in body
    code, _, headers = curl("-H", "Host: client.test", "-d", "username=ann&password=ann-pw", base(server) + "/")
    assert code == 303 and "/Session/" in headers
    # user@domain works from any login page; a bare name means the page's domain.
    code, _, _ = curl("-d", "username=ann@client.test&password=ann-pw", base(server) + "/")
    assert code == 303
    code, _, _ = curl("-d", "username=ann&password=ann-pw", base(server) + "/")
    assert code == 401
    code, body, _ = curl("-H", "Host: nowhere.test", base(server) + "/")
    assert code == 404 and "does not provide Web Access" in body


def test_https_port(users):
    server = users
    code, _, headers = curl("-k", "-d", "username=u1&password=pw-one", f"https://127.0.0.1:{server.port(9100)}/")
    assert code == 303 and "/Session/" in headers


def test_post_without_csrf_token_is_refused(users, gatehouse_bin):
    server = users
    sid = login(server, "u1", "pw-one")
    url = f"{base(server)}/Session/{sid}/Mailboxes.wssp"
    code, _, _ = curl("-d", "action=create&name=Forged", url)
    assert code == 403
    code, _, _ = curl("-d", "action=create&name=Forged&csrf=not-the-token", url)
    assert code == 403
    listed = cli(gatehouse_bin, server, "LISTMAILBOXES", "u1@example.test", json=True)
    assert "Forged" not in listed
    _, page, _ = curl(url)
    code, _, _ = curl("-d", f"action=create&name=Real&csrf={csrf_of(page)}", url)
    assert code == 303
    assert "Real" in cli(gatehouse_bin, server, "LISTMAILBOXES", "u1@example.test", json=True)
    # Another session's token is no good either.
    other = login(server, "u1", "pw-one")
    _, page2, _ = curl(f"{base(server)}/Session/{other}/Mailboxes.wssp")
    code, _, _ = curl("-d", f"action=create&name=Crossed&csrf={csrf_of(page2)}", url)
    assert code == 403


def test_attachment_download_names_and_paths_cannot_traverse(users, tmp_path):
    server = users
    deliver(server, "u1@example.test",
            message_with_attachment("traversal test", filename="../../../etc/evil.sh", data=b"#!/bin/sh\necho x\n"))
    sid = login(server, "u1", "pw-one")
    s = f"{base(server)}/Session/{sid}"
    _, page, _ = wait_for(lambda: (lambda r: r if "traversal test" in r[1] else None)(curl(f"{s}/Mailbox.wssp?Mailbox=INBOX")),
                          "the message in the list")
    uid = re.search(r"Message\.wssp\?Mailbox=INBOX&amp;UID=(\d+)", page).group(1)
    _, msg, _ = curl(f"{s}/Message.wssp?Mailbox=INBOX&UID={uid}")
    part = re.search(r"Part\.wssp\?Mailbox=INBOX&amp;UID=\d+&amp;Part=(\d+)", msg).group(1)
    code, body, headers = curl(f"{s}/Part.wssp?Mailbox=INBOX&UID={uid}&Part={part}")
    assert code == 200 and body == "#!/bin/sh\necho x\n"
    disp = re.search(r"(?im)^content-disposition: (.*)$", headers).group(1)
    assert disp.startswith("attachment;") and 'filename="evil.sh"' in disp and ".." not in disp and "/" not in disp
    assert "content-type: application/octet-stream" in headers.lower()
    # Path-like part numbers and mailbox names are refused, never read from disk.
    for q in ["Part=../../Settings/Main.settings", "Part=-1", "Part=999"]:
        code, body, _ = curl(f"{s}/Part.wssp?Mailbox=INBOX&UID={uid}&{q}")
        assert code in (400, 404), (q, code)
    for mb in ["../../Settings/Main.settings", "..%2F..%2F..%2Fpostmaster.macnt%2FINBOX", "/etc/passwd", "~u2/INBOX"]:
        code, body, _ = curl(f"{s}/Mailbox.wssp?Mailbox={mb}")
        assert code == 404 and 'id="messages"' not in body, mb
        code, _, _ = curl(f"{s}/Part.wssp?Mailbox={mb}&UID=1&Part=1")
        assert code == 404, mb
    # Another user's message cannot be read by naming it.
    deliver(server, "u2@example.test", message_with_attachment("private to u2", to="u2@example.test"))
    wait_for(lambda: imap_find(server, "u2", "pw-two", "private to u2"), "u2's message")
    code, body, _ = curl(f"{s}/Message.wssp?Mailbox=~u2/INBOX&UID=1")
    assert code == 404 and "private to u2" not in body


def test_settings_password_page_size_and_search(users, gatehouse_bin):
    server = users
    for i in range(12):
        m = EmailMessage()
        m["From"] = "bulk@outside.test"
        m["To"] = "u1@example.test"
        m["Subject"] = f"numbered {i:02d}" + (" needle" if i == 7 else "")
        m.set_content(f"body {i}" + (" haystack-word" if i == 3 else ""))
        deliver(server, "u1@example.test", m)
    sid = login(server, "u1", "pw-one")
    s = f"{base(server)}/Session/{sid}"
    wait_for(lambda: curl(f"{s}/Mailboxes.wssp")[1].count(">12<") >= 1, "12 messages counted")
    _, page, _ = curl(f"{s}/Settings.wssp")
    token = csrf_of(page)
    code, _, _ = curl("-d", f"action=prefs&tz=%2B0200&pagesize=10&csrf={token}", f"{s}/Settings.wssp")
    assert code == 303
    _, page, _ = curl(f"{s}/Mailbox.wssp?Mailbox=INBOX")
    assert page.count('name="uid"') == 10 and "Page 1 of 2" in page
    _, page, _ = curl(f"{s}/Mailbox.wssp?Mailbox=INBOX&Page=1")
    assert page.count('name="uid"') == 2
    # Sorted by subject ascending: the first row is "numbered 00".
    _, page, _ = curl(f"{s}/Mailbox.wssp?Mailbox=INBOX&Sort=subject&Reverse=0")
    assert page.index("numbered 00") < page.index("numbered 01")
    _, page, _ = curl(f"{s}/Mailbox.wssp?Mailbox=INBOX&Search=needle")
    assert page.count('name="uid"') == 1 and "numbered 07" in page
    # Search looks into bodies too.
    _, page, _ = curl(f"{s}/Mailbox.wssp?Mailbox=INBOX&Search=haystack-word")
    assert page.count('name="uid"') == 1 and "numbered 03" in page
    # Password change: the old password is checked, then SetAccountPassword runs as the user.
    code, body, _ = curl("-d", f"action=password&old=bad&new=n1&again=n1&csrf={token}", f"{s}/Settings.wssp")
    assert "old password is not correct" in body
    code, body, _ = curl("-d", f"action=password&old=pw-one&new=pw-new&again=pw-new&csrf={token}",
                         f"{s}/Settings.wssp")
    assert "has been changed" in body
    assert cli(gatehouse_bin, server, "VerifyAccountPassword", "u1@example.test", "PASSWORD", "pw-new").returncode == 0
    # Not allowed when PWDAllowed is NO: the CLI's refusal is shown.
    cli(gatehouse_bin, server, "UpdateAccountSettings", "u1@example.test", "{PWDAllowed=NO;}", check=True)
    code, body, _ = curl("-d", f"action=password&old=pw-new&new=pw-3&again=pw-3&csrf={token}", f"{s}/Settings.wssp")
    assert "Not enough access rights" in body
    assert cli(gatehouse_bin, server, "VerifyAccountPassword", "u1@example.test", "PASSWORD", "pw-new").returncode == 0


def test_user_rules_stay_within_rules_allowed(users, gatehouse_bin):
    server = users
    sid = login(server, "u1", "pw-one")
    s = f"{base(server)}/Session/{sid}"
    _, page, _ = curl(f"{s}/Rules.wssp")
    token = csrf_of(page)
    # RulesAllowed is No by default: Redirect All is refused, the Auto-Reply is always allowed.
    _, body, _ = curl("-d", f"action=redirect&enabled=on&to=x%40outside.test&csrf={token}", f"{s}/Rules.wssp")
    assert "may not modify" in body
    _, body, _ = curl("-d", f"action=autoreply&enabled=on&text=Away&csrf={token}", f"{s}/Rules.wssp")
    assert "Saved." in body
    rules = cli(gatehouse_bin, server, "GetAccountRules", "u1@example.test", json=True)
    assert [r[1] for r in rules] == ["#Auto-Reply"]
    cli(gatehouse_bin, server, "UpdateAccountSettings", "u1@example.test", '{RulesAllowed="All But Exec";}', check=True)
    _, body, _ = curl("-d", f"action=redirect&enabled=on&keep=on&to=x%40outside.test&csrf={token}", f"{s}/Rules.wssp")
    assert "Saved." in body
    rules = cli(gatehouse_bin, server, "GetAccountRules", "u1@example.test", json=True)
    assert sorted(r[1] for r in rules) == ["#Auto-Reply", "#Redirect All"]
    # Another account's rules are not the user's to read.
    r = cli(gatehouse_bin, server, "GetAccountRules", "u2@example.test", user="u1@example.test", password="pw-one")
    assert r.returncode != 0


def test_forward_reply_all_flag_contacts_and_mailbox_management(users, gatehouse_bin):
    server = users
    m = message_with_attachment("team plan", to="u1@example.test")
    m["Cc"] = "u2@example.test, dave@outside.test"
    m["Reply-To"] = "plans@outside.test"
    deliver(server, "u1@example.test", m)
    wait_for(lambda: imap_find(server, "u1", "pw-one", "team plan"), "the message")
    sid = login(server, "u1", "pw-one")
    s = f"{base(server)}/Session/{sid}"
    _, page, _ = curl(f"{s}/Mailbox.wssp?Mailbox=INBOX")
    token = csrf_of(page)
    uid = re.search(r"Message\.wssp\?Mailbox=INBOX&amp;UID=(\d+)", page).group(1)
    # Reply All: To is the Reply-To plus the original To less the user; Cc the original Cc.
    _, page, _ = curl(f"{s}/Compose.wssp?Op=ReplyAll&Mailbox=INBOX&UID={uid}")
    to = re.search(r'id="to"[^>]*value="([^"]*)"', page).group(1)
    cc = re.search(r'id="cc"[^>]*value="([^"]*)"', page).group(1)
    assert to == "plans@outside.test" and cc == "u2@example.test, dave@outside.test"
    # Forward: the original goes along unmodified as message/rfc822.
    code, _, headers = curl("-F", f"csrf={token}", "-F", "To=u2@example.test", "-F", "Subject=Fwd: team plan",
                            "-F", "Body=FYI", "-F", f"Forward=INBOX/{uid}", "-F", "Send=1", f"{s}/Compose.wssp")
    assert code == 303 and "Done=sent" in headers
    fwd = wait_for(lambda: imap_find(server, "u2", "pw-two", "Fwd: team plan"), "the forward")[0]
    inner = [p for p in fwd.walk() if p.get_content_type() == "message/rfc822"]
    assert inner, [p.get_content_type() for p in fwd.walk()]
    original = inner[0].get_payload()[0] if inner[0].is_multipart() else email.message_from_bytes(inner[0].get_payload(decode=True))
    assert original["Subject"] == "team plan"
    # An address nobody can deliver to is refused with the form kept.
    code, body, _ = curl("-F", f"csrf={token}", "-F", "To=not an address", "-F", "Subject=kept", "-F", "Send=1",
                         f"{s}/Compose.wssp")
    assert code == 200 and "is not an e-mail address" in body and 'value="kept"' in body
    # Flag, then unread, from the list.
    code, _, _ = curl("-d", f"action=flag&uid={uid}&csrf={token}", f"{s}/Mailbox.wssp?Mailbox=INBOX")
    assert code == 303
    with imaplib.IMAP4("127.0.0.1", server.port(143)) as c:
        c.login("u1", "pw-one")
        c.select("INBOX")
        _, data = c.uid("FETCH", uid, "(FLAGS)")
        assert b"\\Flagged" in data[0]
    # Take Address, then the contact is listed and offered in Compose.
    code, _, _ = curl("-d", f"action=add&email=carol%40outside.test&name=Carol&csrf={token}", f"{s}/Contacts.wssp")
    assert code == 303
    _, page, _ = curl(f"{s}/Contacts.wssp")
    assert "carol@outside.test" in page
    _, page, _ = curl(f"{s}/Compose.wssp")
    assert "Carol &lt;carol@outside.test&gt;" in page or "Carol <carol@outside.test>" in page
    # Create, rename and delete mailboxes; INBOX cannot be deleted.
    for data in ["action=create&name=Projects", "action=rename&name=Projects&newname=Archive"]:
        code, body, _ = curl("-d", f"{data}&csrf={token}", f"{s}/Mailboxes.wssp")
        assert code == 303, body
    listed = cli(gatehouse_bin, server, "LISTMAILBOXES", "u1@example.test", json=True)
    assert "Archive" in listed and "Projects" not in listed
    code, body, _ = curl("-d", f"action=delete&name=INBOX&csrf={token}", f"{s}/Mailboxes.wssp")
    assert code == 200 and 'class="msg error"' in body
    code, _, _ = curl("-d", f"action=delete&name=Archive&csrf={token}", f"{s}/Mailboxes.wssp")
    assert code == 303
    assert "Archive" not in cli(gatehouse_bin, server, "LISTMAILBOXES", "u1@example.test", json=True)
    # Delete moves to Trash (made on first use); in Trash it removes for good.
    code, _, _ = curl("-d", f"action=delete&uid={uid}&csrf={token}", f"{s}/Mailbox.wssp?Mailbox=INBOX")
    assert code == 303
    assert imap_find(server, "u1", "pw-one", "team plan", mailbox="Trash")
    _, page, _ = curl(f"{s}/Mailbox.wssp?Mailbox=Trash")
    tuid = re.search(r"Message\.wssp\?Mailbox=Trash&amp;UID=(\d+)", page).group(1)
    code, _, _ = curl("-d", f"action=delete&uid={tuid}&csrf={token}", f"{s}/Mailbox.wssp?Mailbox=Trash")
    assert code == 303
    assert not imap_find(server, "u1", "pw-one", "team plan", mailbox="Trash")


def test_rpop_page_answers_honestly(users):
    server = users
    sid = login(server, "u1", "pw-one")
    code, body, _ = curl(f"{base(server)}/Session/{sid}/RPOP.wssp")
    assert code == 200 and "Remote POP accounts" in body
    # Either the records (the RPOP module is in) or the CLI's own error text.
    assert 'name="records"' in body or 'class="msg error"' in body


def test_auto_signup_only_where_enabled(users, gatehouse_bin):
    server = users
    code, body, _ = curl(base(server) + "/Signup.wssp")
    assert code == 404 and "Sign up" not in curl(base(server) + "/")[1]
    cli(gatehouse_bin, server, "UpdateDomainSettings", "example.test", "{AutoSignup=YES;}", check=True)
    assert "Sign up" in curl(base(server) + "/")[1]
    code, body, _ = curl("-d", "username=newbie&realName=New+Bie&password1=nb-pw&password2=nb-pw",
                         base(server) + "/Signup.wssp")
    assert code == 200, body
    assert cli(gatehouse_bin, server, "VerifyAccountPassword", "newbie@example.test", "PASSWORD", "nb-pw").returncode == 0
    login(server, "newbie", "nb-pw")


# ------------------------------------------------------------------ the browser tour


def png_1x1():
    """A valid 1x1 red PNG."""
    def chunk(kind, data):
        c = kind + data
        return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)
    raw = b"\x00\xff\x00\x00"
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def html_message(subject, remote_url):
    m = EmailMessage()
    m["From"] = "News <news@outside.test>"
    m["To"] = "u1@example.test"
    m["Subject"] = subject
    m.set_content("plain alternative")
    m.add_alternative(
        '<html><head><title>t</title><script>document.title="pwned"</script></head><body>'
        '<p onclick="document.title=\'pwned\'">Hello <b>HTML</b> reader</p>'
        '<img alt="logo" src="cid:logo@outside.test">'
        f'<img alt="remote" src="{remote_url}">'
        '<a href="javascript:document.title=\'pwned\'">click</a></body></html>', subtype="html")
    m.get_payload()[1].add_related(png_1x1(), maintype="image", subtype="png", cid="<logo@outside.test>")
    return m


@pytest.fixture
def browser(tmp_path):
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromedriver are installed by tests/run-all.sh", pytrace=False)
    from webdriver import chromium
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver, proc = chromium(download_dir=downloads)
    driver.downloads = downloads
    yield driver
    driver.quit()
    proc.kill()
    proc.wait()


def shot(b, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    b.screenshot(SHOTS / f"webmail-{name}.png")


def test_browser_webmail_tour(users, gatehouse_bin, browser, tmp_path):
    server = users
    print(f"\nscreenshots: {SHOTS}")
    b = browser
    deliver(server, "u1@example.test", message_with_attachment("quarterly report"))
    wait_for(lambda: imap_find(server, "u1", "pw-one", "quarterly report"), "the test message")

    # Log in.
    b.get(base(server) + "/")
    b.find("#username").type("u1")
    b.find("#password").type("pw-one")
    shot(b, "login")
    b.find("button[type=submit]").click()
    b.wait_for(lambda: "/Mailboxes.wssp" in b.current_url(), "the mailbox list")
    session = b.current_url().split("/Mailboxes.wssp")[0]
    assert "INBOX" in b.find("#mailboxes").text()
    shot(b, "mailboxes")

    # Open the message and download its attachment.
    b.get(session + "/Mailbox.wssp?Mailbox=INBOX")
    shot(b, "inbox")
    b.find("#messages a.subject").click()
    b.wait_for(lambda: "/Message.wssp" in b.current_url(), "the message page")
    assert b.find("#subject").text() == "quarterly report"
    assert "the report is attached" in b.find("#textbody").text()
    shot(b, "message")
    b.find("#attachments a").click()
    target = b.downloads / "report.pdf"
    wait_for(lambda: target.exists() and target.read_bytes() == PDF, "the downloaded attachment")

    # Reply: the form is prepared from the original.
    b.find("a.button[href*='Op=Reply&']").click()
    b.wait_for(lambda: "/Compose.wssp" in b.current_url(), "the reply form")
    assert b.find("#to").attribute("value") == "Carol <carol@outside.test>"
    assert b.find("#subject").attribute("value") == "Re: quarterly report"
    assert "> the report is attached." in b.find("#body").property("value")
    b.find("#body").type("Thanks, received.")
    shot(b, "reply")
    b.find("#savedraft").click()
    b.wait_for(lambda: "Mailbox=Drafts" in b.current_url(), "the Drafts mailbox")
    assert "Draft saved" in b.source()
    # The draft is edited and sent: it leaves Drafts, a copy lands in Sent.
    b.find("#messages a.subject").click()
    b.find("a.button[href*='Op=Draft']").click()
    b.wait_for(lambda: "Op=Draft" in b.current_url(), "the draft in the composer")
    # The remote recipient is replaced by a local one so the reply can be checked over IMAP.
    b.find("#to").clear()
    b.find("#to").type("u2@example.test")
    b.find("#send").click()
    b.wait_for(lambda: "Done=sent" in b.current_url(), "the sent notice")
    replies = wait_for(lambda: imap_find(server, "u2", "pw-two", "Re: quarterly report"), "the reply at u2")
    assert replies[0]["In-Reply-To"] == "<quarterly.report@outside.test>"
    assert "Thanks, received." in replies[0].get_payload(decode=True).decode()
    assert imap_find(server, "u1", "pw-one", "Re: quarterly report", mailbox="Sent")
    assert not imap_find(server, "u1", "pw-one", "Re: quarterly report", mailbox="Drafts")

    # Compose with an uploaded attachment to another local user, who finds it over IMAP.
    upload = tmp_path / "numbers.bin"
    upload.write_bytes(bytes(range(256)) * 100)
    b.get(session + "/Compose.wssp")
    b.find("#to").type("u2@example.test")
    b.find("#subject").type("with attachment")
    b.find("#body").type("See the file.")
    b.find("#attachments").type(str(upload))
    shot(b, "compose")
    b.find("#send").click()
    b.wait_for(lambda: "Done=sent" in b.current_url(), "the sent notice")
    got = wait_for(lambda: imap_find(server, "u2", "pw-two", "with attachment"), "the message at u2")[0]
    assert email.utils.parseaddr(got["From"]) == ("User One", "u1@example.test")
    assert any("[127.0.0.1]" in r and "HTTP" in r for r in got.get_all("Received")), "the user's address"
    files = [p for p in got.walk() if p.get_filename()]
    assert [p.get_filename() for p in files] == ["numbers.bin"]
    assert files[0].get_payload(decode=True) == upload.read_bytes()

    # Move the original to a new folder.
    b.get(session + "/Mailboxes.wssp")
    b.find("form input[name=action][value=create] ~ label input[name=name]").type("Reports")
    b.find("form input[name=action][value=create] ~ button").click()
    b.wait_for(lambda: ">Reports</a>" in b.source(), "the new mailbox")
    b.get(session + "/Mailbox.wssp?Mailbox=INBOX")
    b.find("#messages a.subject").click()
    b.find("select[name=action] option[value=move]").click()
    b.find("select[name=target] option[value=Reports]").click()
    b.find("form.toolbar button[type=submit]").click()
    b.wait_for(lambda: "/Mailbox.wssp" in b.current_url(), "back to the list")
    assert imap_find(server, "u1", "pw-one", "quarterly report", mailbox="Reports")
    assert not imap_find(server, "u1", "pw-one", "quarterly report", mailbox="INBOX")
    shot(b, "moved")

    # Vacation: set the Auto-Reply, then a message from u2 is answered.
    b.get(session + "/Rules.wssp")
    b.find("#autoreply-on").click()
    b.find("#autoreply-text").type("I am away until Monday.")
    shot(b, "rules")
    b.find("#autoreply-save").click()
    b.find(".msg.ok")
    m = EmailMessage()
    m["From"] = "User Two <u2@example.test>"
    m["To"] = "u1@example.test"
    m["Subject"] = "are you there"
    m["Message-ID"] = "<are.you.there@example.test>"
    m.set_content("Ping.")
    deliver(server, "u1@example.test", m)
    answers = wait_for(lambda: [x for x in imap_find(server, "u2", "pw-two", "are you there")
                                if "away until Monday" in str(x.get_payload(decode=True) or x.get_payload())],
                       "the auto-reply at u2")
    assert answers

    # An HTML message: shown sanitised in a sandboxed frame, the cid: image from the message,
    # the remote image only after asking, and nothing of its script runs.
    hits = []
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    import threading

    class Tracker(BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(png_1x1())

        def log_message(self, *a):
            pass

    tracker = ThreadingHTTPServer(("127.0.0.1", 0), Tracker)
    threading.Thread(target=tracker.serve_forever, daemon=True).start()
    try:
        deliver(server, "u1@example.test",
                html_message("html newsletter", f"http://127.0.0.1:{tracker.server_port}/pixel.png"))
        wait_for(lambda: imap_find(server, "u1", "pw-one", "html newsletter"), "the HTML message")
        b.get(session + "/Mailbox.wssp?Mailbox=INBOX&Search=newsletter")
        b.find("#messages a.subject").click()
        b.wait_for(lambda: "/Message.wssp" in b.current_url(), "the HTML message page")
        assert b.find("#remote-notice")
        frame = b.find("#htmlbody")
        b.cmd("POST", "/frame", {"id": {ELEMENT: frame.id}})
        b.wait_for(lambda: "Hello" in b.find("p").text(), "the framed HTML")
        imgs = b.find_all("img")
        logo = [i for i in imgs if i.attribute("alt") == "logo"][0]
        assert "CID=logo" in (logo.attribute("src") or "")
        b.wait_for(lambda: logo.property("naturalWidth") == 1, "the inline cid: image")
        remote = [i for i in imgs if i.attribute("alt") == "remote"][0]
        assert not remote.attribute("src")
        assert not b.find_all("script")
        for a in b.find_all("a"):
            assert not (a.attribute("href") or "").lower().startswith("javascript")
        b.cmd("POST", "/frame/parent", {})
        shot(b, "html-message")
        assert b.execute("return document.title") != "pwned"
        assert hits == [], "a remote image was loaded before the user asked"
        b.find("#remote-notice a").click()
        b.wait_for(lambda: "Remote=1" in b.current_url(), "remote content shown")
        wait_for(lambda: hits, "the remote image, once asked for")
        assert "pwned" not in b.execute("return document.title")
    finally:
        tracker.shutdown()

    # Phone-sized layout still shows the list.
    b.cmd("POST", "/window/rect", {"width": 390, "height": 844})
    b.get(session + "/Mailbox.wssp?Mailbox=INBOX")
    b.find("#messages")
    shot(b, "phone-inbox")

    # Log out: the session URL is dead.
    b.find("form[action$='/Bye.wssp'] button").click()
    b.wait_for(lambda: "logged out" in b.source(), "the logout page")
    b.get(session + "/Mailboxes.wssp")
    assert "session has ended" in b.source()
