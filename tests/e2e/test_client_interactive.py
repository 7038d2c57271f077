"""The `gatehouse` client's interactive prompt (issue 3): command-name completion with Tab,
history with the Up key, errors shown and the prompt going on. Driven in tmux like a person would."""

import shutil
import subprocess
import time

from cli_helpers import cli, password_file


def _screen(session):
    return subprocess.run(["tmux", "capture-pane", "-t", session, "-p"],
                          capture_output=True, text=True, check=True).stdout


def _keys(session, *keys):
    subprocess.run(["tmux", "send-keys", "-t", session, *keys], check=True)
    time.sleep(0.4)


def test_prompt_completion_and_history(server, gatehouse_bin):
    assert shutil.which("tmux"), "tmux is installed by tests/run-all.sh"
    pw = password_file(server)
    session = f"gh{server.offset}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "30",
                    f"{gatehouse_bin} --server 127.0.0.1:{server.port(106)} --password-file {pw}"],
                   check=True)
    try:
        deadline = time.monotonic() + 10
        while "gatehouse>" not in _screen(session):
            assert time.monotonic() < deadline, _screen(session)
            time.sleep(0.1)
        _keys(session, "MainDom", "Tab")
        _keys(session, "Enter")
        _keys(session, "CreateAccount typed", "Enter")
        _keys(session, "NoSuchCommand", "Enter")
        _keys(session, "Up", "Up", "Up", "Enter")  # MainDomainName again, from history
        screen = _screen(session)
        assert screen.count("gatehouse> MainDomainName") == 2, screen
        assert screen.count("example.test") >= 2, screen
        assert "Unknown command" in screen, screen
        _keys(session, "C-d")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert "typed" in cli(gatehouse_bin, server, "ListAccounts", json=True)
