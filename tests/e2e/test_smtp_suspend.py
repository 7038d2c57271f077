"""Per-domain suspension of outgoing SMTP (guide.txt:11346-11351): after a failed connection to
the relay, every message for it waits until the retry time, even once the relay is back up; when
the time is up and the relay answers, the waiting messages go together. The relay is a Python
SMTP sink (test_smtp_out.Sink) that is down, then up on the same port.
"""

import socket
import time
import uuid

from cli_helpers import cli
from test_smtp_out import Sink, got, send_out, smtp_settings

RETRY = 8


def queue_states(gatehouse_bin, server):
    return cli(gatehouse_bin, server, "ListQueue", json=True) or []


def test_a_failed_connection_suspends_the_destination(server, gatehouse_bin):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    cli(gatehouse_bin, server, "UpdateModule", "Queue", "{RetryEvery=%ds;}" % RETRY, check=True)
    smtp_settings(gatehouse_bin, server, ForwardTo=f"127.0.0.1:{port}", IdleTimeout="0")
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    send_out(server, first)
    deadline = time.monotonic() + 20
    while not any("suspended until" in m["State"] for m in queue_states(gatehouse_bin, server)):
        assert time.monotonic() < deadline, queue_states(gatehouse_bin, server)
        time.sleep(0.2)
    failed_at = time.monotonic()
    sink = Sink(port=port)
    try:
        # The relay is up now, but its queue is suspended: the second message waits too.
        send_out(server, second)
        time.sleep(2)
        assert not sink.messages and sink.connections == 0, sink.commands
        states = [m["State"] for m in queue_states(gatehouse_bin, server)]
        assert len(states) == 2 and all("suspended" in s for s in states), states
        # At the retry time the first message connects, and the second goes with it rather than
        # on its own schedule (RETRY seconds after it was deferred).
        assert sink.wait(got(sink, first), timeout=RETRY + 10), sink.commands
        assert sink.wait(got(sink, second), timeout=5), sink.commands
        took = time.monotonic() - failed_at
        assert RETRY - 2 <= took < RETRY + 2 + 3, took
        assert queue_states(gatehouse_bin, server) == []
        assert "waiting message(s) released" in server.log
    finally:
        sink.close()
