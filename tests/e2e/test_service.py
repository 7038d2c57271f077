"""The service itself (issue 2): base directory, ProcessID, listeners in the log, restart, a second
server on the same base, graceful stop, and crash-safety of settings writes under kill -9."""

import random
import subprocess
import time

from cli_helpers import cli


def test_layout_and_listener_records(server):
    for d in ("Settings", "Queue", "BadFiles", "Accounts", "Domains", "Submitted", "SystemLogs"):
        assert (server.base / d).is_dir(), d
    assert (server.base / "ProcessID").read_text().strip() == str(server.pid)
    assert (server.base / "Accounts" / "postmaster.macnt" / "account.settings").is_file()
    # A record per listener, in the console mirror and in today's log file.
    pwd_port = server.port(106)
    deadline = time.monotonic() + 5
    while f"{pwd_port}" not in server.log and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"{pwd_port}" in server.log
    logs = list((server.base / "SystemLogs").glob("*.log"))
    assert logs, "no log file in SystemLogs"
    server.stop()
    assert f"{pwd_port}" in "".join(p.read_text(errors="replace") for p in logs)


def test_graceful_stop_removes_processid(server):
    assert server.stop() == 0
    assert not (server.base / "ProcessID").exists()


def test_second_server_on_same_base_is_refused(server):
    other = subprocess.run(
        [str(server.binary), "--base", str(server.base), "--port-offset", str(server.offset + 500)],
        capture_output=True, text=True, timeout=20)
    assert other.returncode != 0
    assert "another gatehoused" in other.stderr
    assert server.running
    assert (server.base / "ProcessID").read_text().strip() == str(server.pid)


def test_restart_keeps_domains_accounts_settings(server, gatehouse_bin):
    ok = lambda *a, **k: cli(gatehouse_bin, server, *a, check=True, **k)
    ok("CreateDomain", "client1.test")
    ok("SetDomainAliases", "client1.test", "(mail.client1.test)")
    ok("CreateAccount", "joe@client1.test", "{RealName=\"Joe Q\";Password=secret1;}")
    ok("CreateAccount", "single@client1.test", "TextMailbox")
    ok("SetAccountAliases", "joe@client1.test", "(jq)")
    ok("CreateGroup", "staff@client1.test", "{Members=(joe);}")
    ok("CreateForwarder", "out@client1.test", "TO", "someone@elsewhere.test")
    ok("UpdateAllAccountsDefaults", "{MaxAccountSize=10M;}")
    assert server.stop() == 0
    server.start()
    assert "client1.test" in ok("ListDomains", json=True)
    assert ok("GetDomainAliases", "client1.test", json=True) == ["mail.client1.test"]
    assert "joe" in ok("ListAccounts", "mail.client1.test", json=True)
    accounts = ok("ListAccounts", "client1.test", json=True)
    assert "joe" in accounts and "single" in accounts
    assert ok("GetAccountSettings", "joe@client1.test", json=True)["RealName"] == "Joe Q"
    assert ok("GetAccountAliases", "joe@client1.test", json=True) == ["jq"]
    assert ok("GetForwarder", "out@client1.test", json=True) == "someone@elsewhere.test"
    assert "joe" in ok("GetGroup", "staff@client1.test", json=True)["Members"]
    assert ok("GetAllAccountsDefaults", json=True)["MaxAccountSize"] == "10M"
    ok("VerifyAccountPassword", "joe@client1.test", "PASSWORD", "secret1")
    # The postmaster password given on first start still logs in (cli() uses it).


def test_settings_survive_kill9_during_writes(server, gatehouse_bin):
    """kill -9 at random moments while settings are rewritten: every settings file stays whole and
    holds either the old or a new value, and the server starts again."""
    cli(gatehouse_bin, server, "CreateAccount", "crash", check=True)
    rng = random.Random(1234)
    for round_ in range(8):
        writer = subprocess.Popen(
            ["bash", "-c",
             f"for i in $(seq 1 200); do {gatehouse_bin} --server 127.0.0.1:{server.port(106)} "
             f"--user postmaster --password-file {server.base.parent}/pw UpdateAccountSettings crash "
             f"\"{{RealName=\\\"round {round_} write $i\\\";}}\" >/dev/null 2>&1 || true; done"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.0))
        server.kill9()
        writer.kill()
        writer.wait()
        settings = server.base / "Accounts" / "crash.macnt" / "account.settings"
        text = settings.read_text()
        assert text.strip().startswith("{") and text.strip().endswith("}"), text
        server.start()
        got = cli(gatehouse_bin, server, "GetAccountSettings", "crash", check=True, json=True)
        assert "RealName" not in got or got["RealName"].startswith("round "), got


def test_tls_listener_and_domain_certificate(server, gatehouse_bin, tmp_path):
    """A TLS-on-connect socket added at run time with UpdateModule; a domain's own certificate
    (domain settings SSLCertificate/SSLPrivateKey) is served to clients that name the domain."""
    import ssl
    import socket as sk

    ok = lambda *a, **k: cli(gatehouse_bin, server, *a, check=True, **k)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=client1.test", "-keyout", str(tmp_path / "k.pem"),
                    "-out", str(tmp_path / "c.pem")], check=True, capture_output=True)
    cert, key = (tmp_path / "c.pem").read_text(), (tmp_path / "k.pem").read_text()
    quote = lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\e") + '"'
    ok("CreateDomain", "client1.test")
    bad = cli(gatehouse_bin, server, "UpdateDomainSettings", "client1.test",
              "{SSLCertificate=" + quote(cert) + ";SSLPrivateKey=" + quote("junk") + ";}")
    assert bad.returncode == 1 and "SSLCertificate" in bad.stderr
    ok("UpdateDomainSettings", "client1.test",
       "{SSLCertificate=" + quote(cert) + ";SSLPrivateKey=" + quote(key) + ";}")
    ok("UpdateModule", "PWD",
       "{Listener={Sockets=({Port=106;Address=all;SSL=No;},{Port=107;Address=127.0.0.1;SSL=Yes;});};}")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def peer_cert(sni):
        deadline = time.monotonic() + 5
        while True:
            try:
                with sk.create_connection(("127.0.0.1", server.port(107)), timeout=5) as raw:
                    with ctx.wrap_socket(raw, server_hostname=sni) as tls:
                        assert tls.recv(200).startswith(b"200 ")
                        return ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True))
            except ConnectionRefusedError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    own = ssl.PEM_cert_to_DER_cert(cert)
    assert ssl.PEM_cert_to_DER_cert(peer_cert("client1.test")) == own
    server_pem = (server.base / "Settings" / "ServerCertificate.pem").read_text()
    assert ssl.PEM_cert_to_DER_cert(peer_cert("localhost")) == ssl.PEM_cert_to_DER_cert(server_pem)
    status = ok("GetServerStatus", json=True)
    ports = [s["Port"] for s in status["Listeners"]["PWD"]["Sockets"]]
    assert ports == ["106", "107"]
