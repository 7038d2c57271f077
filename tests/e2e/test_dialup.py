"""The TCP Activity Schedule gates outgoing mail (issue 7 item 1, guide.txt:5253-5303): with the
window closed, a LAN client's mail to an outside domain is accepted and queued and no outbound
connection is made (the sink asserts it); when the window opens the queue is released and the
mail goes out. GetServerStatus reports the window.

Time is the server's test clock (`gatehoused --test-clock`, moved with `SetTestClock`), so no
test waits for a real window."""

import smtplib
import time
import uuid

import pytest

from cli_helpers import cli
from test_smtp_out import Sink, got
from test_webadmin import curl

# Monday 2026-11-23, 03:00 at UTC+01:00: outside the 08:00-09:00 window below.
NIGHT = "2026-11-23T03:00:00+01:00"
MORNING = "2026-11-23T08:00:30+01:00"
WINDOW = '({Days="Every Day"; When="08:00-09:00"; Pause=0;})'


@pytest.fixture
def night_server(server_factory):
    return server_factory(extra_args=["--test-clock", NIGHT])


def test_closed_window_holds_mail_until_it_opens(night_server, gatehouse_bin):
    server = night_server
    ok = lambda *a, **k: cli(gatehouse_bin, server, *a, check=True, **k)
    sink = Sink()
    try:
        ok("SetRouterTable", f"outside.test = [127.0.0.1:{sink.port}]")
        ok("SetDialupSchedule", WINDOW)
        status = ok("GetServerStatus", json=True)
        assert status["DialupWindow"] == "Closed" and status["NextWindow"] == "2026-11-23 08:00", status
        marker = uuid.uuid4().hex
        # A LAN client (a Client IP Address, so it may relay) sends to the outside over SMTP.
        ok("SetClientIPs", "127.0.0.1")
        with smtplib.SMTP("127.0.0.1", server.port(25), timeout=10) as s:
            s.sendmail("sender@example.test", ["someone@outside.test"],
                       f"From: <sender@example.test>\r\nTo: <someone@outside.test>\r\n"
                       f"Subject: out {marker}\r\n\r\nbody {marker}\r\n")
        # Accepted and queued, waiting for the link; no connection to the outside at all.
        deadline = time.monotonic() + 20
        while not any("TCP Activity Schedule" in m["State"] for m in ok("ListQueue", json=True)):
            assert time.monotonic() < deadline, ok("ListQueue", json=True)
            time.sleep(0.1)
        assert not sink.wait(lambda s: s.connections > 0, timeout=3), "a connection was made while closed"
        status = ok("GetServerStatus", json=True)
        assert status["QueuedPerDomain"] == {"outside.test": "1"}, status
        # WebAdmin's Status page shows the same.
        code, page = curl("-u", f"postmaster:{server.password}", f"http://127.0.0.1:{server.port(8010)}/Status")
        assert code == 200 and "Dial-up link" in page and "outside.test" in page and "Closed" in page, page
        # Wake up now says why not while the schedule keeps the link closed.
        woken = cli(gatehouse_bin, server, "WakeUpNow")
        assert woken.returncode == 1 and "closed until 2026-11-23 08:00" in woken.stderr, woken.stderr
        assert sink.connections == 0
        # The clock reaches the window: the queue is released.
        ok("SetTestClock", MORNING)
        assert sink.wait(got(sink, marker), timeout=30), f"not sent when the window opened: {sink.commands}"
        # The sink has the message before the sender records the delivery: wait for the record.
        deadline = time.monotonic() + 10
        while ok("ListQueue", json=True):
            assert time.monotonic() < deadline, ok("ListQueue", json=True)
            time.sleep(0.1)
        status = ok("GetServerStatus", json=True)
        assert status["DialupWindow"] == "Open" and status["LastSession"].startswith("2026-11-23 08:00"), status
        smtp = [r for k, r in status["RemoteServers"].items() if k.startswith("SMTP ")]
        assert smtp and smtp[0]["Result"] == "OK" and smtp[0]["Messages"] == "1", status
        assert ok("ListQueue", json=True) == []
        records = ok("ReadLog", "TAG", "TCP", json=True)
        assert any("released" in r["Text"] for r in records), records
        assert any("link session started" in r["Text"] for r in records), records
    finally:
        sink.close()


def test_wake_up_now_inside_the_window_runs_a_session(night_server, gatehouse_bin):
    ok = lambda *a, **k: cli(gatehouse_bin, night_server, *a, check=True, **k)
    ok("SetDialupSchedule", '({Days="Every Day"; When="08:00-09:00"; Pause=3600;})')
    ok("SetTestClock", MORNING)
    # The watcher's own session for the opening window, then the administrator's despite the Pause.
    assert "queue" in ok("WakeUpNow", json=True)
    # Only what ran: no RPOP record and no backup server (SendWakeupsTo) here.
    assert ok("WakeUpNow", json=True) == ["queue"]


def test_set_test_clock_needs_the_test_option(server, gatehouse_bin):
    r = cli(gatehouse_bin, server, "SetTestClock", NIGHT)
    assert r.returncode == 1 and "--test-clock" in r.stderr
