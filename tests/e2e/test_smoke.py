"""Smoke test: first start lays out the base directory (guide.txt:2334-2361), SIGTERM stops cleanly."""

BASE_DIRS = ("Settings", "Queue", "BadFiles", "Accounts", "Domains", "Submitted", "SystemLogs")


def test_first_start_creates_base_layout_and_sigterm_removes_process_id(server):
    for name in BASE_DIRS:
        assert (server.base / name).is_dir(), f"{name}/ missing in the base directory"
    assert (server.base / "Accounts" / "postmaster.macnt" / "account.settings").is_file()

    pid_file = server.base / "ProcessID"
    assert pid_file.is_file(), "ProcessID missing while the server runs"
    assert pid_file.read_text().strip() == str(server.pid)

    assert server.stop() == 0, f"graceful stop must exit 0\n{server.log}"
    assert not pid_file.exists(), "ProcessID left behind after SIGTERM"
