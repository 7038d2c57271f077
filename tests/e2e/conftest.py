"""Fixtures for Gatehouse end-to-end tests: real `gatehoused` processes on fresh base directories.

Each server gets its own temporary base directory and its own `--port-offset` (10000 + 1000*k).
An offset is claimed with an exclusive lock file for the server's lifetime, so servers in one test,
in parallel pytest workers or in two runs on one machine never share ports, and every port of the
offset is checked free before the server starts. Only 127.0.0.1 is ever contacted.

Fixtures:
  gatehoused_bin  path of the server binary (env GATEHOUSED, else <target dir>/debug/gatehoused)
  gatehouse_bin   path of the CLI client (env GATEHOUSE, else <target dir>/debug/gatehouse)
  server_factory  call it to start one more server: `server_factory()` -> Server;
                  `server_factory(extra_args=["--test-clock", "2026-11-23T03:00:00+00:00"])` adds options
  server          one started server
At teardown every server still running gets SIGTERM, then SIGKILL after 10 s, and the test fails
unless it exited on SIGTERM.
"""

import errno
import fcntl
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# The manual's default ports (DESIGN.md "Default ports"); every one moves by the port offset.
DEFAULT_TCP_PORTS = (25, 465, 587, 366, 110, 995, 143, 993, 106, 8010, 9010, 8100, 9100, 389, 636, 674, 8021)
DEFAULT_UDP_PORTS = (161,)
PWD_PORT = 106

OFFSET_BASE = 10000
OFFSET_STEP = 1000


def _ephemeral_floor():
    """The lowest port the kernel hands out for port-0 binds (the tests' sinks and stubs)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# The highest offset that keeps the highest default port (9100) below the ephemeral range, so a
# sink bound to port 0 in one test can never take a server port of another running in parallel.
OFFSET_SLOTS = (min(65536, _ephemeral_floor()) - 1 - max(DEFAULT_TCP_PORTS) - OFFSET_BASE) // OFFSET_STEP + 1

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
MAIN_DOMAIN = "example.test"

LOCK_DIR = Path(tempfile.gettempdir()) / "gatehouse-e2e-offsets"


def _target_dir():
    return Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")


def _binary(env_name, name):
    path = Path(os.environ.get(env_name) or _target_dir() / "debug" / name)
    if not path.is_file():
        pytest.fail(f"{name} not found at {path}: build it (cargo build -p gatehouse-server --bins) "
                    f"or set {env_name}; tests/run-all.sh does both", pytrace=False)
    return path


def _port_free(port, kind):
    # SO_REUSEADDR as a server sets it: bind then fails only on a live listener, not on TIME_WAIT.
    with socket.socket(socket.AF_INET, kind) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _offset_ports_free(offset):
    return all(_port_free(p + offset, socket.SOCK_STREAM) for p in DEFAULT_TCP_PORTS) and all(
        _port_free(p + offset, socket.SOCK_DGRAM) for p in DEFAULT_UDP_PORTS
    )


def _claim_offset():
    """Lock the first offset that no other process holds and whose ports are free; returns (offset, lock fd)."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    for k in range(OFFSET_SLOTS):
        offset = OFFSET_BASE + OFFSET_STEP * k
        fd = os.open(LOCK_DIR / f"{offset}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.EAGAIN, errno.EACCES):
                continue
            raise
        if _offset_ports_free(offset):
            return offset, fd
        os.close(fd)
    pytest.fail(f"no free port offset among {OFFSET_SLOTS} slots from {OFFSET_BASE}", pytrace=False)


class Server:
    """One real gatehoused on its own base directory and port offset."""

    def __init__(self, binary, base, offset, password, log_dir):
        self.binary = Path(binary)
        self.base = Path(base)
        self.offset = offset
        self.password = password
        self.main_domain = MAIN_DOMAIN
        self.stdout_path = Path(log_dir) / "stdout.log"
        self.stderr_path = Path(log_dir) / "stderr.log"
        self.proc = None
        self.starts = 0
        # More gatehoused options (e.g. the test-only --test-clock).
        self.extra_args = []

    def port(self, default_port):
        """The port this server uses for a module whose default port is `default_port`."""
        return default_port + self.offset

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def stdout(self):
        return self.stdout_path.read_text(errors="replace") if self.stdout_path.exists() else ""

    @property
    def stderr(self):
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    @property
    def log(self):
        """Everything the server printed so far, over all its starts (stderr carries --log-to-console)."""
        return self.stderr + self.stdout

    def command(self):
        return [
            str(self.binary),
            "--base", str(self.base),
            "--port-offset", str(self.offset),
            "--postmaster-password", self.password,
            "--main-domain", self.main_domain,
            "--log-to-console",
        ] + list(self.extra_args)

    def start(self, timeout=START_TIMEOUT):
        """Start (or restart, on the same base) and wait until the PWD port accepts a connection."""
        assert not self.running, "server already running"
        self.starts += 1
        for path in (self.stdout_path, self.stderr_path):
            with open(path, "a") as f:
                f.write(f"----- start #{self.starts} -----\n")
        with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         cwd=self.base.parent)
        pwd = self.port(PWD_PORT)
        deadline = time.monotonic() + timeout
        while True:
            code = self.proc.poll()
            if code is not None:
                pytest.fail(f"gatehoused exited with {code} before listening on {pwd}; "
                            f"command: {' '.join(self.command())}\nstderr:\n{self.stderr}", pytrace=False)
            try:
                with socket.create_connection(("127.0.0.1", pwd), timeout=0.5):
                    return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self._kill()
                pytest.fail(f"gatehoused did not accept on PWD port {pwd} within {timeout:.0f} s; "
                            f"command: {' '.join(self.command())}\nstderr:\n{self.stderr}", pytrace=False)
            time.sleep(0.05)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM and wait; returns the exit code. Fails the test if SIGKILL was needed after `timeout` s."""
        if self.proc is None:
            return None
        if not self._terminate(timeout):
            pytest.fail(f"gatehoused (pid {self.proc.pid}) ignored SIGTERM for {timeout:.0f} s; "
                        f"killed\nstderr:\n{self.stderr}", pytrace=False)
        return self.proc.returncode

    def _terminate(self, timeout):
        """SIGTERM, then SIGKILL after `timeout` s; True if SIGTERM was enough (or it was not running)."""
        if self.proc.poll() is not None:
            return True
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            self._kill()
            return False

    def kill9(self):
        """SIGKILL, as a crash would; returns the exit code (-9)."""
        if self.proc is None:
            return None
        self._kill()
        return self.proc.returncode

    def _kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


@pytest.fixture(scope="session")
def gatehoused_bin():
    return _binary("GATEHOUSED", "gatehoused")


@pytest.fixture(scope="session")
def gatehouse_bin():
    return _binary("GATEHOUSE", "gatehouse")


@pytest.fixture
def server_factory(gatehoused_bin, tmp_path):
    servers = []
    locks = []

    def start(extra_args=(), **kwargs):
        k = len(servers)
        offset, lock_fd = _claim_offset()
        locks.append(lock_fd)
        base = tmp_path / f"base{k}"
        base.mkdir()
        log_dir = tmp_path / f"log{k}"
        log_dir.mkdir()
        srv = Server(gatehoused_bin, base, offset, "pm-" + secrets.token_hex(8), log_dir)
        srv.extra_args = list(extra_args)
        servers.append(srv)
        return srv.start(**kwargs)

    yield start

    stuck = [srv.offset for srv in servers if srv.proc is not None and not srv._terminate(STOP_TIMEOUT)]
    for fd in locks:
        os.close(fd)
    assert not stuck, f"gatehoused on port offset(s) {stuck} ignored SIGTERM for {STOP_TIMEOUT:.0f} s; killed"


@pytest.fixture
def server(server_factory):
    return server_factory()
