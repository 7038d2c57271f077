"""Shutdown while an outgoing delivery waits on the network (issues 5 and 7, defect 1).

The SMTP module's `DNSServers` points at a stub that takes every query, over UDP and TCP, and
never answers, so the delivery of a message to an outside domain hangs in its MX lookup. SIGTERM
must still stop gatehoused within a couple of seconds (the delivery is interrupted, not waited
for), and after a restart the message is still queued: not lost, not failed, no report.
"""

import time
import uuid

from cli_helpers import cli
from dns_helpers import DnsStub
from test_smtp_out import send_out, smtp_settings


def wait_for(pred, what, timeout=20):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_sigterm_interrupts_a_delivery_stuck_in_dns(server, gatehouse_bin):
    # Takes every query, over UDP and TCP (one port), never answers; counts them.
    dns = DnsStub(silent=True, tcp=True)
    try:
        smtp_settings(gatehouse_bin, server, DNSServers=f"127.0.0.1:{dns.port}", SendTLS="Never")
        marker = uuid.uuid4().hex
        send_out(server, marker, to="someone@outside.test")
        # The Dequeuer is in the MX lookup, which will get no answer.
        wait_for(lambda: dns.seen() > 0, "no DNS query for outside.test")
        time.sleep(0.5)
        started = time.monotonic()
        server.stop(timeout=15)
        took = time.monotonic() - started
        assert took < 3, f"SIGTERM took {took:.1f} s with a delivery waiting on the DNS"
        assert "interrupted by the shutdown" in server.log, server.log[-3000:]
        # Restarted: the message is there, its recipient neither failed nor reported.
        server.start()
        queued = cli(gatehouse_bin, server, "ListQueue", json=True, check=True)
        assert len(queued) == 1, queued
        assert queued[0]["Recipients"] == ["someone@outside.test"], queued
        assert "failed" not in queued[0]["State"].lower(), queued
        # It is tried again (the stub sees new queries), and the next SIGTERM is as quick.
        before = dns.seen()
        wait_for(lambda: dns.seen() > before, "not tried again after the restart")
        started = time.monotonic()
        server.stop(timeout=15)
        assert time.monotonic() - started < 3
    finally:
        dns.close()
