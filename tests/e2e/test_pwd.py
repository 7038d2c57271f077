"""The PWD module (issue 3): the guide's sample session, bad input, login failures."""

import time

from cli_helpers import pwd_session


def test_guide_sample_session(server):
    """guide.txt:5349-5371, replayed over a raw socket (the product name in the greeting is ours)."""
    with pwd_session(server) as s:
        assert s.greeting.startswith("200 ")
        assert "PWD Server" in s.greeting
        assert s.send("USER postmaster") == "300 please send the PASS"
        assert s.send(f"PASS {server.password}") == "200 login OK"
        assert s.send('CreateAccount "user1"') == "200 OK"
        assert s.send('CreateAccount "user1"') == "501 Account with this name already exists"
        assert s.send('RenameAccount "user1" into "user2"') == "200 OK"
        assert s.send('CreateDomain "client1.com"') == "200 OK"
        assert s.send('CreateAccount "user1@client1.com" TextMailbox') == "200 OK"
        bye = s.send("QUIT")
        assert bye.startswith("200 ") and "connection closed" in bye


def test_data_reply_framing(server):
    with pwd_session(server) as s:
        s.send("USER postmaster")
        assert s.send(f"PASS {server.password}") == "200 login OK"
        assert s.send("MainDomainName").startswith("200 ")
        assert s.line() == f"\"{server.main_domain}\""


def test_bad_input_keeps_session(server):
    with pwd_session(server) as s:
        s.send("USER postmaster")
        assert s.send(f"PASS {server.password}") == "200 login OK"
        assert s.send("NoSuchCommand x").startswith("5")
        assert s.send('CreateAccount "unbalanced {').startswith("5")
        assert s.send("CreateAccount x {A=(b;}").startswith("5")
        assert s.send("", raw=b"GetAccountSettings \x00\xff\xfe\x01\r\n").startswith("5")
        assert s.send("", raw=b"CreateAccount " + b"a" * 2_000_000 + b"\r\n").startswith("5")
        # Still usable after all of that.
        assert s.send("MainDomainName").startswith("200 ")
        assert s.line() == f"\"{server.main_domain}\""


def test_wrong_password_and_unknown_user_look_alike(server):
    with pwd_session(server) as s:
        s.send("USER postmaster")
        t0 = time.monotonic()
        bad_pw = s.send("PASS wrong")
        delay = time.monotonic() - t0
    with pwd_session(server) as s:
        s.send("USER nobody-here")
        unknown = s.send("PASS wrong")
    assert bad_pw.startswith("5") and unknown.startswith("5")
    assert bad_pw[4:] == unknown[4:]
    assert delay >= 0.5, "failed logins are delayed"


def test_commands_need_login(server):
    with pwd_session(server) as s:
        assert s.send("ListDomains").startswith("5")
        assert s.send("USER postmaster").startswith("300")
