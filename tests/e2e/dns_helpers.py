"""The e2e tests' DNS server: `DnsStub`, a small authoritative stub on 127.0.0.1 (UDP; TCP too with
`tcp=True`) for the SMTP module's `DNSServers`, written with socketserver and hand-built packets.

It answers A, PTR, MX and TXT queries from a zone given as dicts, with NOERROR and no records for
other types of a name it has, NXDOMAIN for names it does not have, SERVFAIL for names (or
(name, type) pairs) in `servfail`, and nothing at all for names in `silent` (`silent=True`: for
every query). It keeps every query it could parse in `queries` as (name, type), and counts every
datagram and TCP connection it gets, parsed or not, in `seen()`.

The TCP listener (same port) only accepts: connections are counted and held open, never answered.
"""

import socket
import socketserver
import struct
import threading

A, PTR, MX, TXT = 1, 12, 15, 16


def _qname(data, off):
    labels = []
    while off < len(data):
        n = data[off]
        off += 1
        if n == 0:
            return ".".join(labels).lower(), off
        labels.append(data[off:off + n].decode("ascii", "replace"))
        off += n
    raise ValueError("bad name")


def _name(name):
    out = b""
    for label in name.strip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        stub = self.server.stub
        with stub.lock:
            stub.received += 1
        try:
            qid, = struct.unpack("!H", data[:2])
            name, off = _qname(data, 12)
            qtype, = struct.unpack("!H", data[off:off + 2])
        except (ValueError, struct.error):
            return
        with stub.lock:
            stub.queries.append((name, qtype))
        if stub.silent is True or name in stub.silent:
            return
        question = data[12:off + 4]
        if name in stub.servfail or (name, qtype) in stub.servfail:
            sock.sendto(struct.pack("!HHHHHH", qid, 0x8582, 1, 0, 0, 0) + question,
                        self.client_address)
            return
        answers = b""
        records = stub.zone.get((name, qtype), [])
        for rdata in records:
            answers += b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, stub.ttl, len(rdata)) + rdata
        # AA set; NXDOMAIN for names the zone does not have at all.
        known = any(n == name for n, _ in stub.zone)
        flags = 0x8580 if known else 0x8583
        sock.sendto(struct.pack("!HHHHHH", qid, flags, 1, len(records), 0, 0) + question + answers,
                    self.client_address)


class DnsStub:
    """a: {name: ip or [ips]}; ptr: {ip: host}; mx: {domain: [(preference, host)]};
    txt: {name: text}; servfail: names or (name, type) pairs; silent: names, or True for all;
    ttl: of every record; tcp: also listen on TCP (accepted, held, never answered)."""

    def __init__(self, a=None, ptr=None, mx=None, txt=None, servfail=(), silent=(), ttl=300,
                 tcp=False):
        self.zone = {}
        for name, ips in (a or {}).items():
            for ip in ([ips] if isinstance(ips, str) else ips):
                self.zone.setdefault((name, A), []).append(socket.inet_aton(ip))
        for ip, host in (ptr or {}).items():
            rev = ".".join(reversed(ip.split("."))) + ".in-addr.arpa"
            self.zone.setdefault((rev, PTR), []).append(_name(host))
        for name, records in (mx or {}).items():
            for pref, host in records:
                self.zone.setdefault((name, MX), []).append(struct.pack("!H", pref) + _name(host))
        for name, text in (txt or {}).items():
            raw = text.encode()
            self.zone.setdefault((name, TXT), []).append(bytes([len(raw)]) + raw)
        self.servfail = set(servfail)
        self.silent = True if silent is True else set(silent)
        self.ttl = ttl
        self.queries = []
        self.received = 0
        self.lock = threading.Lock()
        self.server = socketserver.ThreadingUDPServer(("127.0.0.1", 0), _Handler)
        self.server.stub = self
        self.port = self.server.server_address[1]
        self.tcp, self.held, self.closed = None, [], False
        if tcp:
            self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.tcp.bind(("127.0.0.1", self.port))
            self.tcp.listen(16)
            threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            # Kept open and unanswered.
            with self.lock:
                self.held.append(conn)
                self.received += 1

    def count(self, name, qtype=None):
        """Parsed queries for `name` (of type `qtype` if given)."""
        with self.lock:
            return sum(1 for n, t in self.queries if n == name and (qtype is None or t == qtype))

    def seen(self):
        """Every datagram and TCP connection received so far."""
        with self.lock:
            return self.received

    def close(self):
        self.closed = True
        self.server.shutdown()
        self.server.server_close()
        if self.tcp:
            self.tcp.close()
        with self.lock:
            for conn in self.held:
                conn.close()
