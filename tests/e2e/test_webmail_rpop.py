"""WebMail's RPOP page (issue 9, guide.txt:20400-20406, 8794-8797, 12419-12432): a user whose
RPOPAllowed is YES adds a remote account pointing at Dovecot's POP3 on 127.0.0.1 through the form
(curl), the poll brings its mail into the user's INBOX, Last shows on the
page, the password is never sent back, and the RPOP module's user limits (Minimum Poll Period for
Users, Maximum Number of Accounts per User) refuse what exceeds them while the administrator is
not limited. Dovecot is started by test_rpop.py's helper."""

import re
import uuid

from cli_helpers import cli
from mail_helpers import messages_with
from test_rpop import dovecot, message, polled, wait_for  # noqa: F401 (dovecot is a fixture)
from test_webmail import base, csrf_of, curl, login, make_user


def form(csrf, rows):
    """The RPOP form's fields for `rows` (dicts with host, account, password, every, leave, apop,
    delete), plus the empty add row the page always has."""
    fields = [("csrf", csrf), ("rows", str(len(rows)))]
    for i, r in enumerate(rows):
        for k in ("host", "account", "password", "every"):
            fields.append((f"{k}{i}", r.get(k, "")))
        for k in ("leave", "apop", "delete"):
            if r.get(k):
                fields.append((f"{k}{i}", "on"))
    args = []
    for k, v in fields:
        args += ["--data-urlencode", f"{k}={v}"]
    return args


def post(server, sid, rows):
    url = f"{base(server)}/Session/{sid}/RPOP.wssp"
    _, page, _ = curl(url)
    return curl(*form(csrf_of(page), rows), url)


def test_user_adds_a_remote_account_within_the_limits(server, gatehouse_bin, dovecot):
    ok = lambda *a, **k: cli(gatehouse_bin, server, *a, check=True, **k)
    ok("UpdateModule", "RPOP", "{AllowSelfPoll=Yes; MinPollPeriodForUsers=30m; MaxAccountsPerUser=1;}")
    make_user(gatehouse_bin, server, "rp", "pw-rp")
    ok("UpdateAccountSettings", "rp@example.test", "{RPOPAllowed=YES;}")
    marker = uuid.uuid4().hex
    dovecot.deliver("alice", message(marker, to="rp@example.test"))
    sid = login(server, "rp", "pw-rp")
    code, body, _ = curl(f"{base(server)}/Session/{sid}/RPOP.wssp")
    assert code == 200 and 'name="host0"' in body and "Not enough access rights" not in body

    host = f"127.0.0.1:{dovecot.port}"
    # Below the Minimum Poll Period for Users: refused, nothing stored.
    row = {"host": host, "account": "alice", "password": "secret", "every": "10m", "leave": True}
    code, body, _ = post(server, sid, [row])
    assert code == 200 and "Minimum Poll Period for Users" in body, body
    assert ok("GetAccountRPOP", "rp@example.test", json=True) == []
    # Within it: stored, and the password is not sent back.
    row["every"] = "1h"
    code, body, _ = post(server, sid, [row])
    assert code == 200 and "Saved." in body, body
    assert "secret" not in body and 'placeholder="(saved)"' in body
    rows = ok("GetAccountRPOP", "rp@example.test", json=True)
    assert [(r["Host"], r["Account"], r["Password"], r["Leave"], r["PollEvery"]) for r in rows] == \
        [(host, "alice", "secret", "Yes", "3600s")], rows

    # Never polled, so due: the poll brings the message into the user's INBOX.
    s = polled(ok, dovecot)
    assert s["Result"] == "OK" and s["Messages"] == "1", s
    assert len(messages_with(server, "rp", marker)) == 1
    wait_for(lambda: re.search(r"<td class=\"muted\">20\d\d-",
                               curl(f"{base(server)}/Session/{sid}/RPOP.wssp")[1]),
             lambda: "no Last time on the page")

    # A second account is over the Maximum Number of Accounts per User ...
    keep = {"host": host, "account": "alice", "password": "", "every": "1h", "leave": True}
    code, body, _ = post(server, sid, [keep, {"host": host, "account": "bob", "password": "x", "every": "1h"}])
    assert "Maximum Number of Accounts per User" in body, body
    assert len(ok("GetAccountRPOP", "rp@example.test", json=True)) == 1
    # ... an edit with the password left empty keeps the stored one ...
    keep["apop"] = True
    code, body, _ = post(server, sid, [keep])
    assert "Saved." in body, body
    rows = ok("GetAccountRPOP", "rp@example.test", json=True)
    assert rows[0]["Password"] == "secret" and rows[0]["APOP"] == "Yes", rows
    # ... and the administrator is not limited.
    two = ('({PollEvery=1m; Account=alice; Host="%s"; Password=secret;}, '
           '{PollEvery=1m; Account=bob; Host="%s"; Password=x;})' % (host, host))
    ok("SetAccountRPOP", "rp@example.test", two)
    assert len(ok("GetAccountRPOP", "rp@example.test", json=True)) == 2
    # Delete both rows through the page.
    code, body, _ = post(server, sid, [dict(keep, delete=True), {"host": host, "account": "bob", "delete": True}])
    assert "Saved." in body, body
    assert ok("GetAccountRPOP", "rp@example.test", json=True) == []


def test_rpop_commands_for_the_user_follow_rpop_allowed(server, gatehouse_bin):
    make_user(gatehouse_bin, server, "rq", "pw-rq")
    me = {"user": "rq@example.test", "password": "pw-rq"}
    rec = '({PollEvery=1h; Account=a; Host="127.0.0.1:1"; Password=p;})'
    r = cli(gatehouse_bin, server, "SetAccountRPOP", "rq@example.test", rec, **me)
    assert r.returncode != 0 and "Not enough access rights" in r.stderr
    cli(gatehouse_bin, server, "UpdateAccountSettings", "rq@example.test", "{RPOPAllowed=YES;}", check=True)
    cli(gatehouse_bin, server, "SetAccountRPOP", "rq@example.test", rec, check=True, **me)
    assert cli(gatehouse_bin, server, "GetAccountRPOP", "rq@example.test", json=True, check=True, **me)[0]["Account"] == "a"
    # Another account's records stay the administrator's.
    make_user(gatehouse_bin, server, "rz", "pw-rz")
    r = cli(gatehouse_bin, server, "GetAccountRPOP", "rz@example.test", **me)
    assert r.returncode != 0 and "Not enough access rights" in r.stderr
