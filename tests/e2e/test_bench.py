"""Smoke runs of the load generators (gatehouse-bench smtp, imap, pop, imap-idle) against a test
server, brief enough for every run, so that they cannot rot. The figures are not judged, only
that each run completes and prints its table.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest

from cli_helpers import cli

PASSWORD = "bench-pw"


@pytest.fixture
def bench_bin(gatehouse_bin):
    path = Path(os.environ.get("GATEHOUSE_BENCH") or Path(gatehouse_bin).parent / "gatehouse-bench")
    if not path.is_file():
        pytest.fail(f"gatehouse-bench not found at {path}", pytrace=False)
    return path


@pytest.fixture
def bench_server(server, gatehouse_bin):
    # Clear passwords: the run measures the protocol, not the password hash.
    for name in ("bench0", "bench1"):
        cli(gatehouse_bin, server, "CreateAccount", name,
            f"{{PasswordEncryption=clear;Password={PASSWORD};}}", check=True)
    return server


def bench(bench_bin, *args):
    proc = subprocess.run([str(bench_bin), *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def inbox_count(server, name):
    path = server.base / "Accounts" / f"{name}.macnt" / "INBOX.mbox"
    return path.read_bytes().count(b"\nSubject: gatehouse-bench") if path.exists() else 0


def test_smtp_then_pop(bench_bin, bench_server):
    s = bench_server
    for name in ("bench0", "bench1"):
        out = bench(bench_bin, "smtp", "--server", f"127.0.0.1:{s.port(25)}",
                    "--from", "a@far.example", "--to", f"{name}@{s.main_domain}",
                    "--connections", "2", "--messages", "2", "--size", "2048")
        assert "sent 4 messages" in out, out
    deadline = time.monotonic() + 20
    while not all(inbox_count(s, n) >= 4 for n in ("bench0", "bench1")):
        assert time.monotonic() < deadline, "the bench messages were not delivered"
        time.sleep(0.2)
    out = bench(bench_bin, "pop", "--server", f"127.0.0.1:{s.port(110)}", "--user", "bench%d",
                "--password", PASSWORD, "--clients", "2", "--rounds", "5")
    for op in ("login", "stat", "retr", "dele", "quit"):
        assert f"\n{op} " in out, out
    # Four messages each, five sessions each: one session each found the mailbox empty.
    assert "sessions that found the mailbox empty: 2" in out, out
    assert inbox_count(s, "bench0") == 0


def test_imap(bench_bin, bench_server):
    s = bench_server
    out = bench(bench_bin, "imap", "--server", f"127.0.0.1:{s.port(143)}", "--user", "bench%d",
                "--password", PASSWORD, "--clients", "2", "--rounds", "2", "--size", "1024")
    for op in ("login", "select", "append", "fetch", "store", "close", "logout"):
        assert f"\n{op} " in out and "ops/s" in out, out


def test_imap_idle(bench_bin, bench_server):
    s = bench_server
    out = bench(bench_bin, "imap-idle", "--server", f"127.0.0.1:{s.port(143)}", "--user", "bench0",
                "--password", PASSWORD, "--pid", str(s.pid), "--sessions", "20", "--settle", "0")
    assert "20 sessions opened" in out and "per session:" in out, out


def test_bad_options_are_refused(bench_bin):
    proc = subprocess.run([str(bench_bin), "imap", "--server"], capture_output=True, text=True)
    assert proc.returncode != 0 and "needs a value" in proc.stderr
