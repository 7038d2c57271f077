"""The queue survives `kill -9` (issue 4, "Done when"; DESIGN.md §Mail flow: at least once).

5,000 messages are dropped in `Submitted/` (spec D §5.1: composed as .tmp, renamed to .sub) while the
server is killed with SIGKILL at random moments and restarted on the same base directory. At the end every
message is in the account's INBOX.mbox (read with Python's `mailbox.mbox`) whole, none is lost, and the
duplicates are few: only messages in flight at a kill (a .sub taken but not yet deleted, a recipient
delivered but not yet recorded) may arrive twice. The queue ends empty: no .msg, .sta or .tmp left, nothing in
BadFiles.

Needs the whole mail path in gatehoused: the PIPE `Submitted/` scanner (pipe), the Enqueuer/Dequeuer (queue),
the Router (router) and Local Delivery (local).
"""

import mailbox
import os
import random
import time

from cli_helpers import cli

TOTAL = int(os.environ.get("GATEHOUSE_CRASH_MESSAGES", "5000"))
KILLS = 6
DRAIN_TIMEOUT = 900.0
# At each kill: PIPE may have submitted a batch of .sub files it had not deleted yet, and each Dequeuer
# processor may have delivered one recipient it had not recorded yet.
MAX_DUPLICATES_PER_KILL = 64


def drop(sub, n):
    body = f"crash test message {n}\n" + ("x" * 70 + "\n") * (n % 7)
    text = (f"From: sender@example.test\nTo: crash@example.test\nSubject: crash-{n}\n"
            f"Message-ID: <crash-{n}@example.test>\n\n{body}")
    tmp = sub / f"crash-{n}.tmp"
    tmp.write_text(text)
    os.rename(tmp, sub / f"crash-{n}.sub")


def queue_files(server):
    q = server.base / "Queue"
    return [p.name for p in q.iterdir()] if q.exists() else []


def test_kill9_during_5000_messages(server, gatehouse_bin):
    rng = random.Random(int(os.environ.get("GATEHOUSE_CRASH_SEED", "4")))
    cli(gatehouse_bin, server, "CreateAccount", "crash", check=True)
    sub = server.base / "Submitted"
    sub.mkdir(exist_ok=True)

    # Drop the messages in chunks; kill at random points between and during the chunks.
    kill_at = sorted(rng.sample(range(1, TOTAL), KILLS))
    n = 0
    kills = 0
    while n < TOTAL:
        stop = kill_at[kills] if kills < len(kill_at) else TOTAL
        while n < stop:
            drop(sub, n)
            n += 1
        if kills < len(kill_at):
            # Let the server get busy with the backlog, then crash it mid-work.
            time.sleep(rng.uniform(0.2, 2.0))
            assert server.kill9() == -9
            kills += 1
            server.start()

    deadline = time.monotonic() + DRAIN_TIMEOUT
    while True:
        left_sub = [p for p in sub.iterdir() if p.suffix == ".sub"]
        left_queue = [f for f in queue_files(server) if f.endswith((".msg", ".tmp"))]
        if not left_sub and not left_queue:
            break
        assert time.monotonic() < deadline, (
            f"not drained after {DRAIN_TIMEOUT:.0f} s: {len(left_sub)} .sub, {len(left_queue)} queue files")
        time.sleep(0.5)

    path = server.base / "Accounts" / "crash.macnt" / "INBOX.mbox"
    box = mailbox.mbox(str(path), create=False)
    counts = {}
    try:
        for m in box:
            subject = m["Subject"] or ""
            assert subject.startswith("crash-"), f"unexpected message {subject!r}"
            k = int(subject[len("crash-"):])
            payload = m.get_payload()
            expected = f"crash test message {k}\n" + ("x" * 70 + "\n") * (k % 7)
            assert payload.replace("\r\n", "\n") == expected, f"message {k} is not whole"
            counts[k] = counts.get(k, 0) + 1
    finally:
        box.close()

    lost = [k for k in range(TOTAL) if k not in counts]
    duplicates = sum(c - 1 for c in counts.values())
    print(f"{TOTAL} messages, {kills} kills: {len(lost)} lost, {duplicates} duplicates")
    assert not lost, f"{len(lost)} messages lost, e.g. {lost[:10]}"
    assert duplicates <= kills * MAX_DUPLICATES_PER_KILL, f"{duplicates} duplicates after {kills} kills"
    assert not [f for f in queue_files(server) if not f.startswith(".")], queue_files(server)
    bad = server.base / "BadFiles"
    assert not (bad.exists() and any(bad.iterdir())), list(bad.iterdir())
    assert not [p for p in sub.iterdir() if p.suffix == ".bad"]
