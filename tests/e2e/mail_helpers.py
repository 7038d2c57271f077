"""Helpers for tests that follow mail through the server: drop a `.sub` file in `Submitted/`, find
messages in an account's INBOX.mbox with Python's `mailbox` module."""

import mailbox
import os
import time

WAIT = 20.0


def drop(server, name, text):
    """Compose under a .tmp name and rename to .sub, as the guide recommends (guide.txt:13887-13890)."""
    sub = server.base / "Submitted"
    sub.mkdir(exist_ok=True)
    tmp = sub / f"{name}.tmp"
    tmp.write_bytes(text.encode())
    os.rename(tmp, sub / f"{name}.sub")


def inbox(server, account):
    return server.base / "Accounts" / f"{account}.macnt" / "INBOX.mbox"


def messages_with(server, account, marker, timeout=WAIT):
    """The messages in the account's INBOX whose Subject holds `marker`, waiting until one arrives."""
    deadline = time.monotonic() + timeout
    while True:
        path = inbox(server, account)
        if path.exists():
            box = mailbox.mbox(str(path), create=False)
            try:
                found = [m for m in box if marker in (m["Subject"] or "")]
            finally:
                box.close()
            if found:
                return found
        if time.monotonic() > deadline:
            return []
        time.sleep(0.1)
