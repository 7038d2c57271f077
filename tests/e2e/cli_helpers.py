"""Small helpers to drive a server through the real `gatehouse` client and a raw PWD socket."""

import json as jsonlib
import socket
import subprocess


def password_file(server, password=None, name="pw"):
    path = server.base.parent / name
    path.write_text((password if password is not None else server.password) + "\n")
    path.chmod(0o600)
    return path


def cli(binary, server, *args, user="postmaster", password=None, json=False, check=False):
    """Run `gatehouse` with one command; returns parsed JSON (json=True), else the CompletedProcess.
    check=True fails the test on a non-zero exit, showing stderr."""
    pw = password_file(server, password, name="pw" if password is None else f"pw-{user}")
    cmd = [str(binary), "--server", f"127.0.0.1:{server.port(106)}", "--user", user,
           "--password-file", str(pw)]
    if json:
        cmd.append("--json")
    proc = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise AssertionError(f"gatehouse {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    if json and proc.returncode == 0:
        return jsonlib.loads(proc.stdout) if proc.stdout.strip() else None
    return proc


class pwd_session:
    """A raw PWD connection: send(line) returns the reply line; data() reads one data line."""

    def __init__(self, server):
        self.sock = socket.create_connection(("127.0.0.1", server.port(106)), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.line()

    def line(self):
        return self.file.readline().decode("utf-8", "replace").rstrip("\r\n")

    def send(self, text, raw=None):
        self.sock.sendall(raw if raw is not None else text.encode() + b"\r\n")
        return self.line()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
