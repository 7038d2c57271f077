"""Shutdown while an outgoing delivery waits on the network (issues 5 and 7, defect 1).

The SMTP module's `DNSServers` points at a stub that takes every query, over UDP and TCP, and
never answers, so the delivery of a message to an outside domain hangs in its MX lookup. SIGTERM
must still stop gatehoused within a couple of seconds (the delivery is interrupted, not waited
for), and after a restart the message is still queued: not lost, not failed, no report.
"""

import socket
import threading
import time
import uuid

from cli_helpers import cli
from test_smtp_out import send_out, smtp_settings


class SilentDns:
    """Takes DNS queries on 127.0.0.1 (UDP and TCP, one port) and never answers; counts them."""

    def __init__(self):
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(16)
        self.lock = threading.Lock()
        self.queries = 0
        self.held = []
        self.closed = False
        threading.Thread(target=self._udp, daemon=True).start()
        threading.Thread(target=self._tcp, daemon=True).start()

    def _count(self):
        with self.lock:
            self.queries += 1

    def _udp(self):
        while not self.closed:
            try:
                self.udp.recvfrom(512)
            except OSError:
                return
            self._count()

    def _tcp(self):
        while not self.closed:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            # Kept open and unanswered.
            self.held.append(conn)
            self._count()

    def seen(self):
        with self.lock:
            return self.queries

    def close(self):
        self.closed = True
        for s in [self.udp, self.tcp, *self.held]:
            s.close()


def wait_for(pred, what, timeout=20):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_sigterm_interrupts_a_delivery_stuck_in_dns(server, gatehouse_bin):
    dns = SilentDns()
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
