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
