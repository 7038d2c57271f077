"""End-to-end tests of the desktop manager (gatehouse-manager) against a real gatehoused.

The manager runs under Xvfb, driven by tauri-driver (WebDriver; shared/notes/tauri-on-debian.md)
with a small WebDriver client over urllib. Effects are checked with the real `gatehouse` client.
A screenshot of each view is written to tests/out/screenshots/manager-<view>.png.

Needs: the manager binary (env GATEHOUSE_MANAGER, else <target dir>/debug/gatehouse-manager),
tauri-driver (cargo install tauri-driver --locked), WebKitWebDriver (webkit2gtk-driver) and
xvfb-run; tests/run-all.sh provides all of them.
"""

import base64
import http.client
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cli_helpers import cli, password_file
from conftest import REPO, _target_dir

SCREENSHOTS = REPO / "tests" / "out" / "screenshots"
ENTER = "\ue007"  # WebDriver key code of Enter
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def _manager_bin():
    path = Path(os.environ.get("GATEHOUSE_MANAGER") or _target_dir() / "debug" / "gatehouse-manager")
    if not path.is_file():
        pytest.fail(f"gatehouse-manager not found at {path}: build it (cargo build -p gatehouse-manager) "
                    "or set GATEHOUSE_MANAGER; tests/run-all.sh does both", pytrace=False)
    return path


def _tool(name, hint):
    found = shutil.which(name) or (Path.home() / ".cargo" / "bin" / name if name == "tauri-driver" else None)
    if not found or not Path(found).exists():
        pytest.fail(f"{name} not found: {hint} (tests/run-all.sh installs it)", pytrace=False)
    return str(found)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriverError(Exception):
    pass


class Driver:
    """A minimal WebDriver client (W3C protocol) for one tauri-driver session."""

    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"
        self.sid = None

    def _req(self, method, path, body=None, timeout=60):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        for attempt in range(3):
            try:
                with urllib.request.urlopen(req, timeout=timeout) as r:
                    return json.loads(r.read() or b"{}").get("value")
            except urllib.error.HTTPError as e:
                raise WebDriverError(f"{method} {path}: {e.code} {e.read()[:500]!r}") from None
            except (http.client.RemoteDisconnected, ConnectionResetError):
                # WebKitWebDriver now and then drops a connection while the app starts; a
                # dead session fails the retries too.
                if attempt == 2 or path == "/session":
                    raise
                time.sleep(0.5)

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self._req("GET", "/status", timeout=2) is not None:
                    return
            except (OSError, WebDriverError):
                pass
            time.sleep(0.2)
        raise WebDriverError("tauri-driver did not become ready")

    def start(self, application, args):
        caps = {"capabilities": {"alwaysMatch": {"tauri:options": {"application": str(application), "args": args}}}}
        # tauri-driver may answer /status before its native driver listens: retry briefly.
        deadline = time.monotonic() + 30
        while True:
            try:
                value = self._req("POST", "/session", caps, timeout=90)
                break
            except (OSError, WebDriverError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        self.sid = value["sessionId"]

    def quit(self):
        if self.sid:
            try:
                self._req("DELETE", f"/session/{self.sid}", timeout=20)
            except (OSError, WebDriverError):
                pass
            self.sid = None

    def s(self, method, path, body=None):
        return self._req(method, f"/session/{self.sid}{path}", body)

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        found = self.s("POST", "/element", {"using": "css selector", "value": css})
        if not isinstance(found, dict) or ELEMENT not in found:
            raise WebDriverError(f"no element {css}: {found!r}")
        return found[ELEMENT]

    def click(self, css):
        self.s("POST", f"/element/{self.find(css)}/click", {})

    def type(self, css, text, clear=True):
        el = self.find(css)
        if clear:
            self.s("POST", f"/element/{el}/clear", {})
        if text:
            self.s("POST", f"/element/{el}/value", {"text": text})

    def text(self, css):
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", css)

    def wait(self, what, fn, timeout=15):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = fn()
                if last:
                    return last
            except WebDriverError as e:
                last = e
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what} (last: {last!r})")

    def wait_css(self, css, timeout=15):
        return self.wait(css, lambda: self.js("return !!document.querySelector(arguments[0]);", css), timeout)

    def screenshot(self, view):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        # Let the progress bar and row updates settle.
        time.sleep(0.6)
        png = base64.b64decode(self.s("GET", "/screenshot"))
        path = SCREENSHOTS / f"manager-{view}.png"
        path.write_bytes(png)
        return path


@pytest.fixture
def manager_factory(tmp_path):
    """Starts tauri-driver under Xvfb and returns start(args) -> Driver with the manager running."""
    binary = _manager_bin()
    xvfb = _tool("xvfb-run", "install the xvfb package")
    driver_bin = _tool("tauri-driver", "cargo install tauri-driver --locked")
    _tool("WebKitWebDriver", "install the webkit2gtk-driver package")
    started = []

    def start(args, env=None, tray=False):
        port, native = _free_port(), _free_port()
        log = open(tmp_path / f"tauri-driver-{port}.log", "wb")
        command = [driver_bin, "--port", str(port), "--native-port", str(native)]
        if tray:
            # A tray host in the same X display, and the display's name and cookie for xdotool/import.
            trayer = _tool("trayer", "install the trayer package")
            script = (f'printf "%s\\n%s\\n" "$DISPLAY" "$XAUTHORITY" > {tmp_path}/display; '
                      f"{trayer} --edge top --align right --widthtype request --height 32 --SetDockType true "
                      f"--transparent false --tint 0x333333 & exec \"$@\"")
            command = ["sh", "-c", script, "sh", *command]
        proc = subprocess.Popen(
            [xvfb, "-a", "-s", "-screen 0 1280x800x24", *command],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})}, start_new_session=True)
        d = Driver(port)
        started.append((proc, d, log))
        d.wait_ready()
        d.start(binary, args)
        if tray:
            lines = (tmp_path / "display").read_text().splitlines()
            d.x11 = {**os.environ, "DISPLAY": lines[0], "XAUTHORITY": lines[1] if len(lines) > 1 else ""}
            d.scratch = tmp_path
        return d

    yield start

    for proc, d, log in started:
        d.quit()
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def _args(server, pw):
    return ["--server", f"127.0.0.1:{server.port(106)}", "--user", "postmaster", "--password-file", str(pw)]


def _go(d, view):
    d.click(f"#nav-{view}")
    d.wait(f"view {view}", lambda: d.js("return !document.querySelector(arguments[0]).hidden;", f"#view-{view}"))


def test_manager_drives_the_server(server, gatehouse_bin, manager_factory):
    pw = password_file(server)
    d = manager_factory(_args(server, pw))

    # Dashboard: the service runs, with its listeners.
    d.wait("dashboard status", lambda: d.text("#dash-service") == "Running", timeout=30)
    d.wait("listener rows", lambda: "PWD" in d.text("#dash-listeners tbody"))
    assert d.text("#dash-domain") == server.main_domain
    d.screenshot("dashboard")

    # Domains: create one through the form (Enter submits it).
    _go(d, "domains")
    d.wait_css(f'#domain-list li[data-name="{server.main_domain}"]')
    d.type("#domain-new", "branch.test" + ENTER)
    d.wait_css('#domain-list li[data-name="branch.test"]')
    d.wait("domain detail", lambda: "branch.test" in (d.text("#domain-detail h3") or ""))
    assert "branch.test" in cli(gatehouse_bin, server, "ListDomains", json=True)
    d.screenshot("domains")

    # Accounts: create one with a password in the new domain.
    _go(d, "accounts")
    d.wait_css('#account-domain option[value="branch.test"]')
    d.js("const s = document.querySelector('#account-domain'); s.value = 'branch.test';"
         "s.dispatchEvent(new Event('change'));")
    d.type("#account-new-name", "alice")
    d.type("#account-new-password", "Alice-pw-1")
    d.click("#account-create")
    d.wait_css('#account-list li[data-name="alice"]')
    d.wait("account detail", lambda: "alice@branch.test" in (d.text("#account-detail h3") or ""))
    assert "alice" in cli(gatehouse_bin, server, "ListAccounts", "branch.test", json=True)
    ok = cli(gatehouse_bin, server, "VerifyAccountPassword", "alice@branch.test", "PASSWORD", "Alice-pw-1")
    assert ok.returncode == 0, ok.stderr
    d.type('#account-detail input[aria-label="Aliases"]', "al, ally" + ENTER)
    d.wait("aliases saved", lambda: "Saved." in (d.text("#account-detail") or ""))
    assert cli(gatehouse_bin, server, "GetAccountAliases", "alice@branch.test", json=True) == ["al", "ally"]
    d.screenshot("accounts")

    # Dial-up: a bad row is refused next to the row; a good schedule is saved.
    _go(d, "dialup")
    d.wait_css("#sched-table tr.none")
    d.click("#sched-add")
    d.type("#sched-table tr.sched-row:last-child input.when", "25:00-26:00")
    d.type("#sched-table tr.sched-row:last-child input.pause", "600")
    d.click("#sched-save")
    d.wait("row error", lambda: d.text("#sched-table tr.sched-row:last-child .row-error"))
    assert cli(gatehouse_bin, server, "GetDialupSchedule", json=True) == []
    d.type("#sched-table tr.sched-row:last-child input.when", "09:00-17:00")
    d.js("const s = document.querySelector('#sched-table tr.sched-row:last-child select.days');"
         "s.value = 'Mon-Fri';")
    d.click("#sched-save")
    d.wait("saved", lambda: d.text("#sched-status") == "Schedule saved.")
    sched = cli(gatehouse_bin, server, "GetDialupSchedule", json=True)
    assert len(sched) == 1 and sched[0]["Days"] == "Mon-Fri" and sched[0]["When"] == "09:00-17:00"
    assert str(sched[0]["Pause"]) == "600"
    d.click("#sched-add")
    d.type("#sched-table tr.sched-row:last-child input.when", "20:00-22:00")
    d.type("#sched-table tr.sched-row:last-child input.pause", "1800")
    d.click("#wake-now")
    d.wait("wake-up answer", lambda: d.js("return !document.querySelector('#dialup-notice').hidden;"))
    d.screenshot("dialup")

    # Logs: a record written with the CLI appears in the live tail.
    _go(d, "logs")
    d.wait("log rows", lambda: d.js("return document.querySelectorAll('#log-table tbody tr[data-id]').length;"))
    cli(gatehouse_bin, server, "WriteLog", "2", "hello from the manager test", check=True)
    d.wait("new log record", lambda: "hello from the manager test" in d.text("#log-table tbody"), timeout=10)
    d.screenshot("logs")

    # Queue: a list, or a clear "not available" state when the server lacks the queue commands.
    _go(d, "queue")
    d.wait("queue view", lambda: d.js(
        "return !document.querySelector('#queue-notice').hidden || !document.querySelector('#queue-table').hidden"
        " || !document.querySelector('#queue-empty').hidden;"))
    notice = d.text("#queue-notice") or ""
    assert "error" not in d.js("return document.querySelector('#queue-notice').className;"), notice
    d.screenshot("queue")


def test_wrong_password_then_connect_dialog(server, gatehouse_bin, manager_factory, tmp_path):
    bad = password_file(server, "not-the-password", name="bad-pw")
    config = tmp_path / "config"
    d = manager_factory(_args(server, bad), env={"XDG_CONFIG_HOME": str(config)})

    # The login is refused: the connect dialog opens and says why.
    d.wait("connect dialog", lambda: d.js("return document.querySelector('#connect-dialog').open;"), timeout=30)
    d.wait("login message", lambda: "refused" in (d.text("#connect-error") or ""))
    d.screenshot("connect")

    # The right password, remembered: the manager connects and saves it only the user can read.
    d.js("document.querySelector('#connect-remember').checked = true;")
    d.type("#connect-password", server.password + ENTER)
    d.wait("dialog closed", lambda: d.js("return !document.querySelector('#connect-dialog').open;"))
    d.wait("dashboard status", lambda: d.text("#dash-service") == "Running")
    saved = config / "gatehouse-manager" / "password"
    assert saved.read_text().strip() == server.password
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert "Server" in (config / "gatehouse-manager" / "connection.settings").read_text()


def test_service_down_is_shown(server, manager_factory, tmp_path):
    pw = password_file(server)
    args = _args(server, pw)
    server.stop()
    d = manager_factory(args)
    d.wait("down banner", lambda: d.js("return !document.querySelector('#banner').hidden;"), timeout=30)
    assert "cannot be reached" in d.text("#banner-text")
    assert d.text("#dash-service") == "Down"
    d.screenshot("down")
    # The service comes back: Retry reconnects.
    server.start()
    d.click("#banner-retry")
    d.wait("dashboard status", lambda: d.text("#dash-service") == "Running", timeout=20)
    assert d.js("return document.querySelector('#banner').hidden;")


# Badge colours of the tray icon (src-gui/src/tray.rs badge_colour).
GREEN, AMBER, RED = (0x2E, 0xA0, 0x43), (0xE0, 0x9B, 0x1A), (0xD1, 0x24, 0x2F)


def _x(d, *cmd, capture=True):
    return subprocess.run(list(cmd), env=d.x11, capture_output=capture, text=True, timeout=30, check=True).stdout


def _tray_icon(d):
    """The tray icon's window geometry (x, y, w, h), found with xdotool."""
    def find():
        r = subprocess.run(["xdotool", "search", "--classname", "tray-icon tray app"], env=d.x11,
                           capture_output=True, text=True, timeout=10)
        return r.stdout.split()
    wid = d.wait("tray icon", find, timeout=20)[0]
    geo = dict(line.split("=", 1) for line in _x(d, "xdotool", "getwindowgeometry", "--shell", wid).split())
    return int(geo["X"]), int(geo["Y"]), int(geo["WIDTH"]), int(geo["HEIGHT"])


def _badge(d, geometry):
    """Which badge colour dominates the icon on screen: 'green', 'amber', 'red' or None."""
    x, y, w, h = geometry
    shot = d.scratch / "tray-check.png"
    _x(d, "import", "-window", "root", str(shot))
    txt = _x(d, "convert", str(shot), "-crop", f"{w}x{h}+{x}+{y}", "txt:-")
    counts = {"green": 0, "amber": 0, "red": 0}
    for line in txt.splitlines()[1:]:
        hexcol = line.split("#", 1)[1][:6] if "#" in line else ""
        if len(hexcol) != 6:
            continue
        px = tuple(int(hexcol[i:i + 2], 16) for i in (0, 2, 4))
        for name, ref in (("green", GREEN), ("amber", AMBER), ("red", RED)):
            if sum(abs(a - b) for a, b in zip(px, ref)) < 60:
                counts[name] += 1
    best = max(counts, key=counts.get)
    return best if counts[best] >= 4 else None


def test_tray_shows_the_service_state(server, manager_factory):
    pw = password_file(server)
    d = manager_factory(_args(server, pw), tray=True)
    d.wait("dashboard status", lambda: d.text("#dash-service") == "Running", timeout=30)
    icon = _tray_icon(d)
    d.wait("green badge", lambda: _badge(d, icon) == "green", timeout=15)

    # The menu: click the icon, screenshot it, close it with Escape.
    x, y, w, h = icon
    _x(d, "xdotool", "mousemove", str(x + w // 2), str(y + h // 2), "click", "1")
    time.sleep(1.0)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "manager-tray.png"
    _x(d, "import", "-window", "root", str(shot))
    _x(d, "convert", str(shot), "-crop", "520x220+760+0", "+repage", str(shot))
    _x(d, "xdotool", "key", "Escape")

    # The service goes down: the badge turns red at the next poll.
    server.stop()
    d.wait("red badge", lambda: _badge(d, icon) == "red", timeout=20)
