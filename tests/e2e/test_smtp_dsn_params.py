"""DSN parameters carried to the next hop (RFC 3461 §5.2.1): a message received over SMTP with
RET/ENVID and NOTIFY/ORCPT is relayed with them to a server that advertises DSN (which then reports success itself: no report
of ours), and without them to one that does not; then, for NOTIFY=SUCCESS, the sender gets a
"relayed" report (§5.2.2), which goes out through the same relay. The next hop is the Python sink of
test_smtp_out, which records every command and message.
"""

import smtplib
import time
import uuid

from cli_helpers import cli
from test_smtp_out import Sink, got, smtp_settings


def relay_through(server, gatehouse_bin, sink, marker):
    cli(gatehouse_bin, server, "SetClientIPs", "127.0.0.1", check=True)
    smtp_settings(gatehouse_bin, server, ForwardTo=f"127.0.0.1:{sink.port}", IdleTimeout="0")
    with smtplib.SMTP("127.0.0.1", server.port(25), timeout=10) as s:
        s.ehlo("client.test")
        s.sendmail("a@far.example", ["someone@remote.test"],
                   f"Subject: {marker}\r\n\r\n{marker}\r\n",
                   mail_options=["RET=HDRS", "ENVID=env+2B1"],
                   rcpt_options=["NOTIFY=SUCCESS,DELAY", "ORCPT=rfc822;Someone+40Remote.test"])
    assert sink.wait(got(sink, marker)), sink.commands
    mail = next(c for c in sink.commands if c.startswith("MAIL"))
    rcpt = next(c for c in sink.commands if c.startswith("RCPT"))
    return mail, rcpt


def test_dsn_parameters_go_to_a_dsn_server(server, gatehouse_bin):
    sink = Sink(dsn=True)
    try:
        mail, rcpt = relay_through(server, gatehouse_bin, sink, uuid.uuid4().hex)
        assert mail.startswith("MAIL FROM:<a@far.example>"), mail
        assert " RET=HDRS" in mail and " ENVID=env+2B1" in mail, mail
        assert rcpt == "RCPT TO:<someone@remote.test> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Someone@Remote.test", rcpt
        # §5.2.1: the next hop took NOTIFY=SUCCESS on; the success report is its, not ours.
        assert not sink.wait(lambda s: reports(s), timeout=3), reports(sink)
    finally:
        sink.close()


def test_no_dsn_parameters_to_a_server_without_dsn(server, gatehouse_bin):
    sink = Sink()
    try:
        mail, rcpt = relay_through(server, gatehouse_bin, sink, uuid.uuid4().hex)
        assert "RET=" not in mail and "ENVID=" not in mail, mail
        assert rcpt == "RCPT TO:<someone@remote.test>", rcpt
    finally:
        sink.close()


def reports(sink):
    """The delivery reports the sink received (MAIL FROM:<>)."""
    return [m for m in sink.messages if m["mail"].startswith("MAIL FROM:<>")]


def test_relayed_report_when_the_next_hop_has_no_dsn(server, gatehouse_bin):
    sink = Sink()
    try:
        marker = uuid.uuid4().hex
        relay_through(server, gatehouse_bin, sink, marker)
        assert sink.wait(lambda s: reports(s)), f"no report: {sink.commands}"
        report = reports(sink)[0]
        assert report["rcpts"] == ["RCPT TO:<a@far.example>"], report
        data = report["data"]
        assert 'report-type="delivery-status"' in data, data
        assert "Original-Envelope-Id: env+1" in data, data
        assert "Original-Recipient: rfc822;Someone@Remote.test" in data, data
        assert "Final-Recipient: rfc822; someone@remote.test" in data, data
        assert "Action: relayed\r\nStatus: 2.0.0" in data, data
        assert marker in data, "RET=HDRS: the headers come back"
    finally:
        sink.close()


def test_no_relayed_report_without_notify_success(server, gatehouse_bin):
    sink = Sink()
    try:
        cli(gatehouse_bin, server, "SetClientIPs", "127.0.0.1", check=True)
        smtp_settings(gatehouse_bin, server, ForwardTo=f"127.0.0.1:{sink.port}", IdleTimeout="0")
        marker = uuid.uuid4().hex
        with smtplib.SMTP("127.0.0.1", server.port(25), timeout=10) as s:
            s.ehlo("client.test")
            s.sendmail("a@far.example", ["someone@remote.test"],
                       f"Subject: {marker}\r\n\r\n{marker}\r\n",
                       rcpt_options=["NOTIFY=FAILURE,DELAY"])
        assert sink.wait(got(sink, marker)), sink.commands
        time.sleep(2)
        assert not reports(sink), reports(sink)
    finally:
        sink.close()
