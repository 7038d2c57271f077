"""End-to-end test of the installer: build both .deb packages offline with installer/build-debs.sh,
install them into this machine with `dpkg -i`, start the installed gatehoused from its unit's
ExecStart line (as the unit's user, with its capability, plus `--port-offset` so that no port below
1024 is needed), check that it answers on the PWD port, then remove the packages.

It changes the machine (packages, the `gatehouse` user, /var/lib/gatehouse), so it runs only as
root and only where Gatehouse is not installed already; it removes what it added.
"""

import os
import pwd
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, _claim_offset, _target_dir

UNIT = Path("/lib/systemd/system/gatehoused.service")
BASE = Path("/var/lib/gatehouse")


def _bin(env_name, name):
    path = Path(os.environ.get(env_name) or _target_dir() / "debug" / name)
    if not path.is_file():
        pytest.fail(f"{name} not found at {path}: build it or set {env_name} (tests/run-all.sh does both)",
                    pytrace=False)
    return path


def _installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return r.returncode == 0 and "install ok installed" in r.stdout


def _run(*cmd, **kw):
    r = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r.stdout


def _dpkg(*args):
    """dpkg, waiting (up to 3 min) while another apt or dpkg run holds the lock."""
    deadline = time.monotonic() + 180
    while True:
        r = subprocess.run(["dpkg", *map(str, args)], capture_output=True, text=True, timeout=300)
        if r.returncode == 0 or "lock" not in r.stderr or time.monotonic() > deadline:
            assert r.returncode == 0, f"dpkg {' '.join(map(str, args))} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
            return r.stdout
        time.sleep(2)


def _unit_values(text):
    """The unit's [Service] keys (last value wins, as systemd reads single-valued keys)."""
    out, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


@pytest.fixture
def clean_machine():
    if os.geteuid() != 0:
        pytest.skip("the installer test installs packages with dpkg -i and needs root; run it as root")
    for pkg in ("gatehouse-server", "gatehouse-manager"):
        if _installed(pkg):
            pytest.skip(f"{pkg} is already installed on this machine; the test will not replace it")
    if BASE.exists():
        pytest.skip(f"{BASE} exists on this machine; the test will not touch an existing base directory")
    had_user = _user_exists("gatehouse")
    yield
    for pkg in ("gatehouse-manager", "gatehouse-server"):
        if _installed(pkg):
            _dpkg("--purge", pkg)
    # The packages keep the base directory and the user on purge (mail is never deleted with the
    # package): remove the ones this test made.
    shutil.rmtree(BASE, ignore_errors=True)
    if not had_user and _user_exists("gatehouse"):
        subprocess.run(["userdel", "gatehouse"], capture_output=True)
        subprocess.run(["groupdel", "gatehouse"], capture_output=True)


def _user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def test_debs_build_install_and_run(clean_machine, tmp_path):
    binaries = [_bin("GATEHOUSED", "gatehoused"), _bin("GATEHOUSE", "gatehouse"),
                _bin("GATEHOUSE_MANAGER", "gatehouse-manager")]
    out = tmp_path / "dist"
    built = _run(REPO / "installer" / "build-debs.sh", "--out", out, *binaries).split()
    server_deb = next(Path(p) for p in built if "gatehouse-server_" in p)
    manager_deb = next(Path(p) for p in built if "gatehouse-manager_" in p)
    assert server_deb.is_file() and manager_deb.is_file()

    _dpkg("-i", server_deb, manager_deb)
    assert _installed("gatehouse-server") and _installed("gatehouse-manager")

    # What the packages put in place.
    for path in ("/usr/bin/gatehoused", "/usr/bin/gatehouse", "/usr/bin/gatehouse-manager",
                 "/usr/share/applications/gatehouse-manager.desktop",
                 "/etc/xdg/autostart/gatehouse-manager.desktop",
                 "/usr/share/icons/hicolor/128x128/apps/gatehouse-manager.png"):
        assert Path(path).exists(), path
    if shutil.which("desktop-file-validate"):
        _run("desktop-file-validate", "/usr/share/applications/gatehouse-manager.desktop")
    if shutil.which("systemd-analyze"):
        _run("systemd-analyze", "verify", UNIT)
    user = pwd.getpwnam("gatehouse")
    st = BASE.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (user.pw_uid, 0o750)

    # Start the service the way its unit does: ExecStart as User/Group with the ambient capability.
    unit = _unit_values(UNIT.read_text())
    assert unit["ExecStart"] == "/usr/bin/gatehoused --base /var/lib/gatehouse"
    assert unit["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    for key in ("ProtectSystem", "ReadWritePaths", "PrivateTmp", "NoNewPrivileges", "ProtectHome"):
        assert key in unit, key
    offset, lock = _claim_offset()
    password = "installed-" + os.urandom(6).hex()
    cmd = ["setpriv", f"--reuid={unit['User']}", f"--regid={unit['Group']}", "--init-groups",
           "--inh-caps=+net_bind_service", "--ambient-caps=+net_bind_service",
           *shlex.split(unit["ExecStart"]), "--port-offset", str(offset), "--main-domain", "installed.test"]
    log = open(tmp_path / "gatehoused.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd="/",
                            env={**os.environ, "GATEHOUSE_POSTMASTER_PASSWORD": password})
    try:
        port = 106 + offset
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, f"gatehoused exited {proc.returncode}: {(tmp_path / 'gatehoused.log').read_text()}"
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    greeting = s.makefile("rb").readline().decode()
                break
            except OSError:
                assert time.monotonic() < deadline, f"no answer on PWD port {port}"
                time.sleep(0.1)
        assert greeting.startswith("200 "), greeting
        # The installed client logs in and runs a command.
        pw = tmp_path / "pw"
        pw.write_text(password + "\n")
        pw.chmod(0o600)
        domain = _run("/usr/bin/gatehouse", "--server", f"127.0.0.1:{port}", "--password-file", pw, "MainDomainName")
        assert "installed.test" in domain
        # It wrote its base directory as the service user.
        assert (BASE / "Settings").is_dir()
        assert BASE.joinpath("Settings").stat().st_uid == user.pw_uid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        os.close(lock)

    # Removal takes the programs away and keeps the mail (the base directory).
    _dpkg("--purge", "gatehouse-manager", "gatehouse-server")
    assert not Path("/usr/bin/gatehoused").exists()
    assert not Path("/usr/bin/gatehouse-manager").exists()
    assert not UNIT.exists()
    assert (BASE / "Settings").is_dir()
