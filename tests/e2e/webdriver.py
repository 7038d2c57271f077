"""A minimal W3C WebDriver client over urllib (no extra packages), for headless Chromium through
chromedriver and for the manager through tauri-driver: sessions, navigation, element lookup,
typing, clicks, page source and screenshots."""

import base64
import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriverError(AssertionError):
    pass


class Driver:
    """One WebDriver session against a driver listening on `url`."""

    def __init__(self, url, capabilities, timeout=60):
        self.url = url.rstrip("/")
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._call("GET", "/status")
                break
            except (OSError, WebDriverError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        value = self._call("POST", "/session", {"capabilities": {"alwaysMatch": capabilities}})
        self.session = value["sessionId"]

    def _call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                payload = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise WebDriverError(f"{method} {path}: {e.code} {e.read()[:500]!r}") from None
        return payload.get("value")

    def cmd(self, method, path, body=None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url):
        self.cmd("POST", "/url", {"url": url})

    def find(self, css, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            try:
                found = self.cmd("POST", "/element", {"using": "css selector", "value": css})
                return Element(self, found[ELEMENT])
            except WebDriverError:
                if time.monotonic() > deadline:
                    raise WebDriverError(f"no element {css!r} on {self.current_url()}") from None
                time.sleep(0.2)

    def find_all(self, css):
        found = self.cmd("POST", "/elements", {"using": "css selector", "value": css})
        return [Element(self, f[ELEMENT]) for f in found]

    def current_url(self):
        return self.cmd("GET", "/url")

    def source(self):
        return self.cmd("GET", "/source")

    def execute(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def screenshot(self, path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(base64.b64decode(self.cmd("GET", "/screenshot")))

    def wait_for(self, predicate, what, timeout=10):
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise WebDriverError(f"timed out waiting for {what} on {self.current_url()}")
            time.sleep(0.2)

    def quit(self):
        try:
            self.cmd("DELETE", "")
        except (OSError, WebDriverError):
            pass


class Element:
    def __init__(self, driver, eid):
        self.driver = driver
        self.id = eid

    def click(self):
        self.driver.cmd("POST", f"/element/{self.id}/click", {})

    def clear(self):
        self.driver.cmd("POST", f"/element/{self.id}/clear", {})

    def type(self, text):
        self.driver.cmd("POST", f"/element/{self.id}/value", {"text": text})

    def text(self):
        return self.driver.cmd("GET", f"/element/{self.id}/text")

    def attribute(self, name):
        return self.driver.cmd("GET", f"/element/{self.id}/attribute/{name}")

    def property(self, name):
        return self.driver.cmd("GET", f"/element/{self.id}/property/{name}")


def chromium(chromedriver="/usr/bin/chromedriver", binary="/usr/bin/chromium", download_dir=None):
    """Starts chromedriver on a free loopback port and a headless Chromium session; returns
    (driver, process). The flags keep Chromium off the network (only loopback is reachable).
    With `download_dir`, downloads are saved there without asking."""
    port = free_port()
    proc = subprocess.Popen([chromedriver, f"--port={port}", "--allowed-ips=127.0.0.1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    caps = {
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": binary,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1280,900"],
        },
    }
    if download_dir:
        caps["goog:chromeOptions"]["prefs"] = {
            "download.default_directory": str(download_dir),
            "download.prompt_for_download": False,
        }
    try:
        return Driver(f"http://127.0.0.1:{port}", caps), proc
    except Exception:
        proc.kill()
        raise
