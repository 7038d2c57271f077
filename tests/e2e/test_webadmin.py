"""WebAdmin (issue 8): curl for the access rules, headless Chromium for the pages. Every effect is
checked through the `gatehouse` CLI client."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cli_helpers import cli

SHOTS = Path(__file__).resolve().parents[1] / "out" / "screenshots"


def curl(*args, interface=None):
    cmd = ["curl", "-s", "-S", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20"]
    if interface:
        cmd += ["--interface", interface]
    out = subprocess.run(cmd + list(args), capture_output=True, text=True, check=True).stdout
    body, _, code = out.rpartition("\n")
    return int(code), body


def csrf_of(html):
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field in the page"
    return m.group(1)


def test_no_page_without_login(server):
    base = f"http://127.0.0.1:{server.port(8010)}"
    for path in ["/", "/Status", "/Domains", "/Domain/example.test/Accounts", "/Router", "/Logs",
                 "/Queue", "/Schedule", "/Module/PWD", "/MainAdmin/"]:
        code, body = curl(base + path)
        assert code == 401, (path, code)
        assert "<nav>" not in body and "Listeners" not in body and "Log out" not in body
        code, _ = curl("-H", "Accept: text/html", base + path)
        assert code == 303, (path, code)
    code, _ = curl("-u", "postmaster:wrong", base + "/Status")
    assert code == 401
    code, body = curl("-u", f"postmaster:{server.password}", base + "/Status")
    assert code == 200 and "Listeners" in body


def test_post_needs_csrf(server, gatehouse_bin):
    base = f"http://127.0.0.1:{server.port(8010)}"
    auth = ["-u", f"postmaster:{server.password}"]
    code, _ = curl(*auth, "-d", "name=nocsrf.test", base + "/Domains")
    assert code == 403
    code, _ = curl(*auth, "-d", "name=nocsrf.test&csrf=forged", base + "/Domains")
    assert code == 403
    assert "nocsrf.test" not in cli(gatehouse_bin, server, "ListDomains", json=True)
    _, page = curl(*auth, base + "/Domains")
    code, _ = curl(*auth, "-d", f"name=withcsrf.test&csrf={csrf_of(page)}", base + "/Domains")
    assert code == 303
    assert "withcsrf.test" in cli(gatehouse_bin, server, "ListDomains", json=True)


def test_form_login_session_is_bound_to_the_address(server, tmp_path):
    base = f"http://127.0.0.1:{server.port(8010)}"
    jar = str(tmp_path / "jar")
    code, _ = curl("-c", jar, "-d", f"user=postmaster&password={server.password}", base + "/login")
    assert code == 303
    assert "HttpOnly" in Path(jar).read_text() or "#HttpOnly_" in Path(jar).read_text()
    code, body = curl("-b", jar, base + "/Status")
    assert code == 200 and "Log out" in body
    # The same cookie from another address is not a login.
    code, _ = curl("-b", jar, base + "/Status", interface="127.0.0.2")
    assert code == 401
    code, _ = curl("-d", "user=postmaster&password=wrong", base + "/login")
    assert code == 401


def test_domain_admin_is_confined(server, gatehouse_bin):
    ok = lambda *a, **k: cli(gatehouse_bin, server, *a, check=True, **k)
    ok("CreateDomain", "a.test")
    ok("CreateDomain", "b.test")
    ok("CreateAccount", "keep@b.test")
    ok("CreateAccount", "adm@a.test", "{Password=admpw;PasswordEncryption=clear;}")
    ok("SetAccountRights", "adm@a.test", "(Domain,CanCreateAccounts)")
    base = f"http://127.0.0.1:{server.port(8010)}"
    auth = ["-u", "adm@a.test:admpw"]
    code, body = curl(*auth, base + "/Domain/a.test/Accounts")
    assert code == 200 and "adm" in body
    code, body = curl(*auth, base + "/Domain/b.test/Accounts")
    assert "keep" not in body and "Not enough access rights" in body
    for path in ["/Domains", "/Router", "/Protection", "/Module/PWD", "/Logs", "/Status"]:
        _, body = curl(*auth, base + path)
        assert "Not enough access rights" in body, path
    # A POST against the other domain is refused by the CLI layer, and nothing changes.
    _, page = curl(*auth, base + "/Domain/a.test/Accounts")
    token = csrf_of(page)
    _, body = curl(*auth, "-d", f"name=intruder&type=MultiMailbox&csrf={token}", base + "/Domain/b.test/Accounts")
    assert "Not enough access rights" in body
    assert "intruder" not in ok("ListAccounts", "b.test", json=True)
    code, _ = curl(*auth, "-d", f"name=fine&type=MultiMailbox&csrf={token}", base + "/Domain/a.test/Accounts")
    assert code == 303
    assert "fine" in ok("ListAccounts", "a.test", json=True)


def test_https_with_self_signed_certificate(server):
    code, body = curl("-k", "-u", f"postmaster:{server.password}", f"https://127.0.0.1:{server.port(9010)}/MainAdmin/")
    assert code == 303
    code, body = curl("-k", "-u", f"postmaster:{server.password}", f"https://127.0.0.1:{server.port(9010)}/Status")
    assert code == 200 and "Listeners" in body
    # The certificate is the server's own, made on first start.
    out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{server.port(9010)}"],
                         input="", capture_output=True, text=True, timeout=20).stdout
    assert "example.test" in out


@pytest.fixture
def browser():
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromedriver are installed by tests/run-all.sh", pytrace=False)
    from webdriver import chromium
    driver, proc = chromium()
    yield driver
    driver.quit()
    proc.kill()
    proc.wait()


def test_browser_admin_tour(server, gatehouse_bin, browser):
    base = f"http://127.0.0.1:{server.port(8010)}"
    b = browser
    b.get(base + "/Status")
    b.find("input[name=user]").type("postmaster")
    b.find("input[name=password]").type(server.password)
    b.screenshot(SHOTS / "webadmin-login.png")
    b.find("button[type=submit]").click()
    b.wait_for(lambda: "/Status" in b.current_url(), "the Status page")
    b.find("h1")
    b.screenshot(SHOTS / "webadmin-status.png")

    # Create a domain and an account in it.
    b.get(base + "/Domains")
    b.find("form[action='/Domains'] input[name=name]").type("office.test")
    b.find("form[action='/Domains'] button").click()
    b.wait_for(lambda: b.current_url().endswith("/Domain/office.test"), "the new domain's page")
    b.screenshot(SHOTS / "webadmin-domain.png")
    b.get(base + "/Domain/office.test/Accounts")
    b.find("input[name=name]").type("alice")
    b.find("input[name=realname]").type("Alice Example")
    b.find("input[name=password]").type("alice-pw")
    b.find("form[action='/Domain/office.test/Accounts'][method=post] button[type=submit]").click()
    b.wait_for(lambda: "/Account/alice" in b.current_url(), "the new account's page")
    b.screenshot(SHOTS / "webadmin-account.png")
    assert "alice" in cli(gatehouse_bin, server, "ListAccounts", "office.test", json=True)
    settings = cli(gatehouse_bin, server, "GetAccountSettings", "alice@office.test", json=True)
    assert settings["RealName"] == "Alice Example"
    assert cli(gatehouse_bin, server, "VerifyAccountPassword", "alice@office.test", "PASSWORD", "alice-pw").returncode == 0

    # Change the dial-up schedule; a bad period shows the CLI's error and keeps what was typed.
    b.get(base + "/Schedule")
    whens = b.find_all("input[name=when]")
    pauses = b.find_all("input[name=pause]")
    whens[-1].type("19:30-07:30")
    pauses[-1].type("600")
    b.find("form[action='/Schedule'] button").click()
    b.find(".msg.ok")
    b.screenshot(SHOTS / "webadmin-schedule.png")
    sched = cli(gatehouse_bin, server, "GetDialupSchedule", json=True)
    assert sched == [{"Days": "Every Day", "When": "19:30-07:30", "Pause": "600"}]
    whens = b.find_all("input[name=when]")
    whens[0].clear()
    whens[0].type("25:99-07:30")
    b.find("form[action='/Schedule'] button").click()
    assert "element 1" in b.find(".msg.error").text()
    assert cli(gatehouse_bin, server, "GetDialupSchedule", json=True) == sched

    # Read the log: a record written through the CLI shows up, filtered by its text.
    cli(gatehouse_bin, server, "WriteLog", "2", "hello from the browser test", check=True)
    b.get(base + "/Logs?text=browser+test")
    b.wait_for(lambda: "hello from the browser test" in b.source(), "the log record")
    b.screenshot(SHOTS / "webadmin-logs.png")

    # The queue page answers (listing, or saying the queue commands are not there yet).
    b.get(base + "/Queue")
    b.find("h1")
    assert "Queue" in b.find("h1").text()
    b.screenshot(SHOTS / "webadmin-queue.png")
    b.get(base + "/Module/PWD")
    b.find("h1")
    b.screenshot(SHOTS / "webadmin-module.png")


def test_failed_command_shows_cli_error_next_to_its_form(server, gatehouse_bin):
    base = f"http://127.0.0.1:{server.port(8010)}"
    auth = ["-u", f"postmaster:{server.password}"]
    cli(gatehouse_bin, server, "SetClientIPs", "10.0.0.1", check=True)
    _, page = curl(*auth, base + "/Protection")
    code, body = curl(*auth, "--data-urlencode", "which=ClientIPs", "--data-urlencode", "text=10.0.0.2\nnot-an-address",
                      "--data-urlencode", f"csrf={csrf_of(page)}", base + "/Protection")
    assert code == 200
    section = body.split("<h2>Client IP Addresses</h2>")[1].split("</section>")[0]
    assert 'class="msg error"' in section and "line 2" in section
    assert "not-an-address" in section, "what was typed is kept for correction"
    # Nothing was half-saved: the old list stands.
    assert cli(gatehouse_bin, server, "GetClientIPs", json=True).strip() == "10.0.0.1"


# ---------------------------------------------------------------- wave 3 features in WebAdmin

def admin_post(server, path, page_path=None, **fields):
    """POSTs `fields` (a list value repeats the field) to `path` with the CSRF token of the
    page at `page_path` (default: `path`), as postmaster over HTTP Basic."""
    base = f"http://127.0.0.1:{server.port(8010)}"
    auth = ["-u", f"postmaster:{server.password}"]
    _, page = curl(*auth, base + (page_path or path))
    args = ["--data-urlencode", f"csrf={csrf_of(page)}"]
    for k, v in fields.items():
        for one in (v if isinstance(v, list) else [v]):
            args += ["--data-urlencode", f"{k}={one}"]
    return curl(*auth, *args, base + path)


def section(body, title):
    """The HTML of the page section headed `title`."""
    assert f"<h2>{title}</h2>" in body, title
    return body.split(f"<h2>{title}</h2>")[1].split("</section>")[0]


def test_protection_dns_options(server, gatehouse_bin):
    base = f"http://127.0.0.1:{server.port(8010)}"
    cli(gatehouse_bin, server, "SetClientIPs", "10.0.0.1", check=True)
    code, body = admin_post(server, "/Protection", which="UseRBL", on="Yes",
                            item=["rbl.example.test", "", " dnsbl.example.test "])
    assert code == 200
    assert 'class="msg ok"' in section(body, "Use Blacklisting DNS (RBL)")
    prot = cli(gatehouse_bin, server, "GetProtection", json=True)
    assert prot["UseRBL"] == "Yes"
    assert prot["RBLServers"] == ["rbl.example.test", "dnsbl.example.test"]
    # Another option keeps the first; the IP lists are untouched.
    admin_post(server, "/Protection", which="DetectClientsByDNSName", on="Yes", item="*.campus.test")
    admin_post(server, "/Protection", which="BlacklistByDNSName", item="*.dialup.test")
    prot = cli(gatehouse_bin, server, "GetProtection", json=True)
    assert prot["RBLServers"] == ["rbl.example.test", "dnsbl.example.test"] and prot["UseRBL"] == "Yes"
    assert prot["DetectClientsByDNSName"] == "Yes" and prot["ClientDNSNames"] == ["*.campus.test"]
    assert prot["BlacklistByDNSName"] == "No" and prot["BlacklistedDNSNames"] == ["*.dialup.test"]
    assert cli(gatehouse_bin, server, "GetClientIPs", json=True).strip() == "10.0.0.1"
    # The page shows them in the guide's order, each next to its list.
    _, page = curl("-u", f"postmaster:{server.password}", base + "/Protection")
    titles = re.findall(r"<h2>([^<]+)</h2>", page)
    assert titles == ["Client IP Addresses", "Detect Clients by DNS Name", "Blacklisted IP Addresses",
                      "Use Blacklisting DNS (RBL)", "Blacklist by DNS Name", "UnBlacklistable IP Addresses",
                      "UnBlacklist by DNS Name"], titles
    rbl = section(page, "Use Blacklisting DNS (RBL)")
    assert 'value="dnsbl.example.test"' in rbl and "checked" in rbl
    assert "checked" not in section(page, "Blacklist by DNS Name")
    # A bad name shows SetProtection's error next to its form, keeps what was typed, stores nothing.
    code, body = admin_post(server, "/Protection", which="UseRBL", on="Yes", item=["rbl.example.test", "not a name!"])
    rbl = section(body, "Use Blacklisting DNS (RBL)")
    assert 'class="msg error"' in rbl and "is not a domain name" in rbl
    assert 'value="not a name!"' in rbl
    assert cli(gatehouse_bin, server, "GetProtection", json=True) == prot


def test_queue_shows_suspension_and_releases_a_domain(server, gatehouse_bin):
    from test_smtp_out import Sink, got, send_out, smtp_settings
    import socket
    import time
    import uuid
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    cli(gatehouse_bin, server, "UpdateModule", "Queue", "{RetryEvery=600s;}", check=True)
    smtp_settings(gatehouse_bin, server, ForwardTo=f"127.0.0.1:{port}", IdleTimeout="0")
    send_out(server, uuid.uuid4().hex)
    deadline = time.monotonic() + 20
    while not any("suspended until" in m["State"] for m in cli(gatehouse_bin, server, "ListQueue", json=True) or []):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    base = f"http://127.0.0.1:{server.port(8010)}"
    _, page = curl("-u", f"postmaster:{server.password}", base + "/Queue")
    domains = section(page, "Domains")
    assert "remote.test" in domains and "suspended until" in domains, domains
    assert 'name="action" value="release"' in domains

    # A 4xx defers the message without suspending; Release (ReleaseQueue remote.test) sends it now,
    # long before RetryEvery.
    sink = Sink(rcpt_reply="451 try later")
    try:
        cli(gatehouse_bin, server, "DeleteQueuedMessage",
            cli(gatehouse_bin, server, "ListQueue", json=True)[0]["Id"], check=True)
        smtp_settings(gatehouse_bin, server, ForwardTo=f"127.0.0.1:{sink.port}", SendTLS="Never")
        first = uuid.uuid4().hex
        send_out(server, first)
        assert sink.wait(lambda s: s.connections >= 1)
        deadline = time.monotonic() + 20
        while not any(m["State"].startswith("Deferred") for m in cli(gatehouse_bin, server, "ListQueue", json=True) or []):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        sink.rcpt_reply = "250 ok"
        code, body = admin_post(server, "/Queue", action="release", domain="remote.test")
        assert code == 200 and "The queue of remote.test is released." in body
        assert sink.wait(got(sink, first)), sink.commands
        # Retry one message by its Id.
        sink.rcpt_reply = "451 try later"
        second = uuid.uuid4().hex
        send_out(server, second)
        deadline = time.monotonic() + 20
        while not (q := cli(gatehouse_bin, server, "ListQueue", json=True) or []) or not q[0]["State"].startswith("Deferred"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        sink.rcpt_reply = "250 ok"
        code, body = admin_post(server, "/Queue", action="retry", id=q[0]["Id"])
        assert code == 200 and f"Message {q[0]['Id']} will be tried now." in body
        assert sink.wait(got(sink, second)), sink.commands
        code, body = admin_post(server, "/Queue", action="retry", id="999999")
        assert 'class="msg error"' in body and "No queued message 999999" in body
    finally:
        sink.close()


def browser_login(b, server):
    b.get(f"http://127.0.0.1:{server.port(8010)}/login")
    b.find("input[name=user]").type("postmaster")
    b.find("input[name=password]").type(server.password)
    b.find("button[type=submit]").click()
    b.wait_for(lambda: "/Status" in b.current_url(), "the Status page")


def test_dialup_settings_and_wake_up_now(server_factory, gatehouse_bin, browser):
    from test_dialup import MORNING, NIGHT, WINDOW
    from test_smtp_out import Sink
    server = server_factory(extra_args=["--test-clock", NIGHT])
    cli(gatehouse_bin, server, "SetDialupSchedule", WINDOW, check=True)
    cli(gatehouse_bin, server, "UpdateModule", "SMTP", "{SendTLS=Never;}", check=True)
    sink = Sink()
    try:
        b = browser
        browser_login(b, server)
        b.get(f"http://127.0.0.1:{server.port(8010)}/Module/SMTP")
        b.find("#dialup-SendWakeupsTo").type(f"127.0.0.1:{sink.port}")
        b.find("#dialup-WakeupDomains").type("office.test")
        b.find("#dialup-HoldMailForDomains").type("client.test")
        b.find("#dialup-ATRNLoginName").type("office.test")
        b.find("#dialup-ATRNPassword").type("atrn-secret")
        b.execute("document.querySelector(\"#dialup-SendWakeupsTo\").form.submit()")
        b.wait_for(lambda: "Dial-up settings updated." in b.source(), "the dial-up settings saved")
        smtp = cli(gatehouse_bin, server, "GetModule", "SMTP", json=True)
        assert smtp["SendWakeupsTo"] == f"127.0.0.1:{sink.port}"
        assert smtp["WakeupDomains"] == "office.test" and smtp["HoldMailForDomains"] == "client.test"
        assert smtp["ATRNPassword"] == "atrn-secret"
        assert "atrn-secret" not in b.source(), "the password is never echoed"
        # An empty password field keeps the stored password.
        b.find("#dialup-SendWakeupsEvery").clear()
        b.find("#dialup-SendWakeupsEvery").type("3600")
        b.execute("document.querySelector(\"#dialup-SendWakeupsTo\").form.submit()")
        b.wait_for(lambda: "Dial-up settings updated." in b.source(), "the dial-up settings saved")
        smtp = cli(gatehouse_bin, server, "GetModule", "SMTP", json=True)
        assert smtp["SendWakeupsEvery"] == "3600" and smtp["ATRNPassword"] == "atrn-secret"
        # The generic table of the same page does not show it either.
        assert "atrn-secret" not in b.source()
        b.execute("document.querySelector(\"#dialup-SendWakeupsTo\").form.scrollIntoView()")
        b.screenshot(SHOTS / "webadmin-smtp-dialup.png")

        # Outside the window, Wake Up Now shows the CLI's refusal.
        b.execute("document.querySelector(\"input[name=action][value=wakeup]\").form.submit()")
        b.wait_for(lambda: "closed until" in b.source(), "Wake Up Now refused")
        assert "Wake Up Now: The TCP Activity Schedule keeps the link closed until" in b.find(".msg.error").text()
        assert sink.connections == 0
        # Inside the window: the window opening sends one wake-up; Wake Up Now sends another at
        # once and shows what the link session ran.
        cli(gatehouse_bin, server, "SetTestClock", MORNING, check=True)
        assert sink.wait(lambda s: s.commands.count("ETRN office.test") == 1), sink.commands
        b.execute("document.querySelector(\"input[name=action][value=wakeup]\").form.submit()")
        b.wait_for(lambda: "Wake Up Now: " in b.source() and 'class="msg ok"' in b.source(), "Wake Up Now's reply")
        reply = b.find(".msg.ok").text()
        assert reply.startswith("Wake Up Now: "), reply
        assert sink.wait(lambda s: s.commands.count("ETRN office.test") == 2), sink.commands
        b.execute("document.querySelector(\".msg.ok\").scrollIntoView()")
        b.screenshot(SHOTS / "webadmin-wakeup.png")
    finally:
        sink.close()


def test_account_rpop_records(server, gatehouse_bin, browser):
    import socket
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    cli(gatehouse_bin, server, "CreateAccount", "carol@example.test", check=True)
    b = browser
    browser_login(b, server)
    url = f"http://127.0.0.1:{server.port(8010)}/Domain/example.test/Account/carol"
    b.get(url)
    form = "form input[name=action][value=rpop]"
    b.find(form)
    b.find_all("input[name=every]")[-1].type("15m")
    b.find_all("input[name=account]")[-1].type("carol.remote")
    b.find_all("input[name=host]")[-1].type(f"127.0.0.1:{port}")
    b.find_all("input[name=password]")[-1].type("rpop-secret")
    b.execute("document.querySelectorAll(\"select[name=leave]\")[0].value = 'Yes'")
    b.execute("document.querySelector(\"input[name=action][value=rpop]\").form.submit()")
    b.wait_for(lambda: "RPOP records saved." in b.source(), "the RPOP records saved")
    recs = cli(gatehouse_bin, server, "GetAccountRPOP", "carol@example.test", json=True)
    assert len(recs) == 1
    r = recs[0]
    assert (r["Account"], r["Host"], r["Password"], r["Leave"], r["PollEvery"]) == \
        ("carol.remote", f"127.0.0.1:{port}", "rpop-secret", "Yes", "900s"), r
    assert "rpop-secret" not in b.source(), "the password is never echoed"
    # A second row; the first changes its Poll Every and keeps its password (field left empty).
    b.find_all("input[name=every]")[0].clear()
    b.find_all("input[name=every]")[0].type("30m")
    b.find_all("input[name=account]")[-1].type("carol.other")
    b.find_all("input[name=host]")[-1].type("127.0.0.1")
    b.find_all("input[name=password]")[-1].type("other-secret")
    b.execute("document.querySelector(\"input[name=action][value=rpop]\").form.submit()")
    b.wait_for(lambda: "RPOP records saved." in b.source(), "the RPOP records saved")
    recs = cli(gatehouse_bin, server, "GetAccountRPOP", "carol@example.test", json=True)
    assert [(r["Account"], r["PollEvery"], r["Password"]) for r in recs] == \
        [("carol.remote", "1800s", "rpop-secret"), ("carol.other", "600s", "other-secret")], recs
    b.execute("document.querySelector(\"input[name=action][value=rpop]\").form.scrollIntoView()")
    b.screenshot(SHOTS / "webadmin-rpop.png")
    # A bad host: the CLI's error next to the form, the rows as typed, nothing stored.
    b.find_all("input[name=host]")[1].clear()
    b.find_all("input[name=host]")[1].type("bad host!")
    b.execute("document.querySelector(\"input[name=action][value=rpop]\").form.submit()")
    b.wait_for(lambda: "msg error" in b.source(), "the refusal")
    assert "RPOP record 2" in b.find(".msg.error").text()
    assert b.find_all("input[name=host]")[1].property("value") == "bad host!"
    stored = lambda: [{k: v for k, v in r.items() if k != "Last"}  # noqa: E731 (Last: polls run meanwhile)
                      for r in cli(gatehouse_bin, server, "GetAccountRPOP", "carol@example.test", json=True)]
    assert stored() == [{k: v for k, v in r.items() if k != "Last"} for r in recs]
    # Clearing a row's Account removes it.
    b.get(url)
    b.find_all("input[name=account]")[0].clear()
    b.execute("document.querySelector(\"input[name=action][value=rpop]\").form.submit()")
    b.wait_for(lambda: "RPOP records saved." in b.source(), "the RPOP records saved")
    recs = cli(gatehouse_bin, server, "GetAccountRPOP", "carol@example.test", json=True)
    assert [(r["Account"], r["Password"]) for r in recs] == [("carol.other", "other-secret")], recs


def test_rpop_module_unified_accounts(server, gatehouse_bin):
    code, body = admin_post(server, "/Module/RPOP", action="unified", orig="", every="1h",
                            account="all-mail", host="127.0.0.1:1", password="uni-secret",
                            leave="No", apop="No", header="X-Envelope-To")
    assert code == 200 and "Unified Domain-Wide Accounts saved." in body
    assert "uni-secret" not in body
    rpop = cli(gatehouse_bin, server, "GetModule", "RPOP", json=True)
    assert rpop["UnifiedAccounts"] == [{"PollEvery": "1h", "Account": "all-mail", "Host": "127.0.0.1:1",
                                        "Password": "uni-secret", "Leave": "No", "APOP": "No",
                                        "SpecialHeader": "X-Envelope-To"}], rpop
    # The generic table beside it still updates the other settings.
    code, body = admin_post(server, "/Module/RPOP", **{"k:Channels": "3", "o:Channels": ""})
    assert "Module settings updated." in body
    rpop = cli(gatehouse_bin, server, "GetModule", "RPOP", json=True)
    assert rpop["Channels"] == "3" and rpop["UnifiedAccounts"][0]["Password"] == "uni-secret"
