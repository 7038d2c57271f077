"""WebMail shows hostile HTML mail safely (issue 9): every message of tests/e2e/data/hostile/ is
delivered over SMTP, then opened in headless Chromium. Their scripts try to set markers
(document.title, window.name, a cookie, localStorage) and to fetch a counting listener on
127.0.0.1; their images, styles, frames and forms point at the same listener. Nothing may run
and the listener must see no request. After "Show remote content" the remote images load, and
still no script runs."""

import base64
import email
import email.policy
import quopri
import http.server
import smtplib
import socket
import threading
import time
from pathlib import Path

import pytest

from cli_helpers import cli
from test_webmail import base, browser, imap_find, wait_for  # noqa: F401 (browser is a fixture)
from webdriver import ELEMENT

CORPUS = Path(__file__).resolve().parent / "data" / "hostile"


class Counter:
    """An HTTP listener on 127.0.0.1 that records the path of every request."""

    def __init__(self):
        self.paths = []
        counter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                counter.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Type", "image/gif")
                self.end_headers()
                self.wfile.write(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def with_port(raw, port):
    """The message with `@PORT@` replaced in every part, decoded and re-encoded as it came."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    for part in msg.walk():
        if part.is_multipart():
            continue
        cte = (part.get("Content-Transfer-Encoding") or "").lower()
        body = part.get_payload(decode=True) or b""
        body = body.replace(b"@PORT@", str(port).encode())
        if cte == "base64":
            part.set_payload(base64.encodebytes(body).decode())
        elif cte == "quoted-printable":
            part.set_payload(quopri.encodestring(body).decode())
        else:
            part.set_payload(body.decode("utf-8", "replace"))
    return msg.as_bytes()


def html_of(raw):
    """The decoded text/html parts of a message."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    return b"".join(p.get_payload(decode=True) or b"" for p in msg.walk()
                    if p.get_content_type() == "text/html")


@pytest.fixture
def counter():
    c = Counter()
    yield c
    c.close()


def marker_state(b):
    return b.execute("""
        let ls = null, cookie = '';
        try { ls = window.localStorage.getItem('pwned'); } catch (e) { ls = 'blocked'; }
        try { cookie = document.cookie; } catch (e) { cookie = 'blocked'; }
        return [document.title, window.name, cookie, ls];""")


def test_hostile_mail_runs_nothing_and_fetches_nothing(server, gatehouse_bin, browser, counter):
    b = browser
    cli(gatehouse_bin, server, "CreateAccount", "victim@example.test",
        "{Password=pw-v;PasswordEncryption=clear;}", check=True)
    files = sorted(CORPUS.glob("*.eml"))
    assert len(files) >= 17
    with smtplib.SMTP("127.0.0.1", server.port(25), timeout=20) as s:
        for f in files:
            s.sendmail("hostile@example.test", ["victim@example.test"],
                       with_port(f.read_bytes(), counter.port))
    wait_for(lambda: len(imap_find(server, "victim", "pw-v", "hostile")) == len(files),
             "every corpus message")

    b.get(base(server) + "/")
    b.find("#username").type("victim")
    b.find("#password").type("pw-v")
    b.find("button[type=submit]").click()
    b.wait_for(lambda: "/Mailboxes.wssp" in b.current_url(), "the mailbox list")
    session = b.current_url().split("/Mailboxes.wssp")[0]

    links = []
    for page in (1, 2, 3):
        b.get(f"{session}/Mailbox.wssp?Mailbox=INBOX&Page={page}")
        b.find("#messages")
        for a in b.find_all("#messages a.subject"):
            href = a.property("href")
            if href not in links:
                links.append(href)
    assert len(links) == len(files), links

    # Which messages end with the harmless "<p>after</p>": its text must survive sanitising.
    has_after = {f.stem: b"<p>after</p>" in html_of(f.read_bytes()) for f in files}
    remote_page = None
    for href in links:
        b.get(href)
        subject = b.find("#subject").text()
        frames = b.find_all("iframe#htmlbody")
        assert frames, f"{subject}: no HTML frame"
        time.sleep(0.5)
        state = marker_state(b)
        assert "PWNED" not in state[0] and state[1] != "PWNED", (subject, state)
        assert "pwned" not in state[2] and state[3] in (None, "blocked"), (subject, state)
        # Inside the frame as well (its own document).
        b.cmd("POST", "/frame", {"id": {ELEMENT: frames[0].id}})
        inner = marker_state(b)
        body_text = b.execute("return document.body ? document.body.innerText : ''")
        b.cmd("POST", "/frame/parent", {})
        assert inner[0] != "PWNED" and inner[1] != "PWNED", (subject, inner)
        assert "pwned" not in (inner[2] or ""), (subject, inner)
        stem = subject.removeprefix("hostile ")
        assert stem in has_after, subject
        assert not has_after[stem] or "after" in body_text, (subject, body_text)
        if "09-remote-images" in subject:
            remote_page = href
    time.sleep(1)
    assert counter.paths == [], f"the listener was reached: {counter.paths}"

    # Remote content on request: the images load, scripts still do not run.
    assert remote_page
    b.get(remote_page)
    b.find("#remote-notice a").click()
    wait_for(lambda: any(p.startswith("/pixel.gif") for p in counter.paths), "the remote images")
    time.sleep(0.5)
    assert not any(p.startswith("/script") for p in counter.paths), counter.paths
    state = marker_state(b)
    assert "PWNED" not in state[0] and state[1] != "PWNED"
    assert "logo.png" in " ".join(counter.paths)
    # Never loaded, even now: srcset, backgrounds, video posters, link pings.
    for never in ["srcset", "table-bg", "td-bg", "body-bg", "poster", "ping", "protocol-relative"]:
        assert not any(never in p for p in counter.paths), (never, counter.paths)


def test_listener_counts(counter):
    """The counting listener itself works (so a zero above means something)."""
    with socket.create_connection(("127.0.0.1", counter.port), timeout=5) as s:
        s.sendall(b"GET /probe HTTP/1.0\r\nHost: x\r\n\r\n")
        s.recv(100)
    time.sleep(0.2)
    assert counter.paths == ["/probe"]
