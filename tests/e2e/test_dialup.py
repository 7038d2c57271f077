"""The TCP Activity Schedule gates outgoing mail (issue 7 item 1, guide.txt:5253-5303): with the
window closed, a LAN client's mail to an outside domain is accepted and queued and no outbound
connection is made (the sink asserts it); when the window opens the queue is released and the
mail goes out. GetServerStatus reports the window."""

import datetime
import time
import uuid

from cli_helpers import cli
from test_smtp_out import Sink, got, send_out


def closed_window():
    """A one-minute window twelve hours from now: closed now, whatever the time of day."""
    start = datetime.datetime.now() + datetime.timedelta(hours=12)
    end = start + datetime.timedelta(minutes=1)
    return f'({{Days="Every Day"; When="{start:%H:%M}-{end:%H:%M}"; Pause=0;}})'


def test_closed_window_holds_mail_until_it_opens(server, gatehouse_bin):
    ok = lambda *a, **k: cli(gatehouse_bin, server, *a, check=True, **k)
    sink = Sink()
    try:
        ok("SetRouterTable", f"outside.test = [127.0.0.1:{sink.port}]")
        ok("SetDialupSchedule", closed_window())
        status = ok("GetServerStatus", json=True)
        assert status["DialupWindow"] == "Closed" and status["NextWindow"]
        marker = uuid.uuid4().hex
        send_out(server, marker, to="someone@outside.test")
        # Accepted and queued, waiting for the link; no connection to the outside at all.
        deadline = time.monotonic() + 20
        while not any("TCP Activity Schedule" in m["State"] for m in ok("ListQueue", json=True)):
            assert time.monotonic() < deadline, ok("ListQueue", json=True)
            time.sleep(0.1)
        assert not sink.wait(lambda s: s.connections > 0, timeout=3), "a connection was made while closed"
        # Wake up now says why not while the schedule keeps the link closed.
        woken = cli(gatehouse_bin, server, "WakeUpNow")
        assert woken.returncode == 1 and "closed until" in woken.stderr
        assert sink.connections == 0
        # The window opens (an empty schedule is no restriction): the queue is released.
        ok("SetDialupSchedule", "()")
        assert sink.wait(got(sink, marker), timeout=30), f"not sent when the window opened: {sink.commands}"
        assert ok("GetServerStatus", json=True)["DialupWindow"] == "Open"
        assert ok("ListQueue", json=True) == []
        records = ok("ReadLog", "TAG", "TCP", json=True)
        assert any("released" in r["Text"] for r in records), records
    finally:
        sink.close()
