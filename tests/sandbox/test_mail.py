"""The SMTP catcher, driven by smtplib the way Django's SMTP backend drives it (no TLS, no auth)."""

from __future__ import annotations

import smtplib
import time
from email.message import EmailMessage

import pytest

from sandbox.testing import SandboxProcess


def invoice_mail() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "shop@example.com"
    message["To"] = "ada@example.com"
    message["Subject"] = "Rechnung für Ada, #42"
    message.set_content("Hello Ada,\n.a line that starts with a dot\n.\nBye\n")
    message.add_attachment(b"%PDF-1.7 fake", maintype="application", subtype="pdf", filename="invoice-42.pdf")
    return message


def send(sandbox: SandboxProcess, message: EmailMessage, to: list[str] | None = None) -> None:
    with smtplib.SMTP("127.0.0.1", sandbox.smtp_port, timeout=5) as smtp:
        smtp.send_message(message, to_addrs=to)


def test_a_message_with_attachment_is_listed_and_kept_raw(sandbox: SandboxProcess):
    send(sandbox, invoice_mail(), to=["ada@example.com", "books@example.com"])

    [listed] = sandbox.mail_messages()
    assert listed["to"] == ["ada@example.com", "books@example.com"]
    assert listed["subject"] == "Rechnung für Ada, #42"
    assert listed["attachments"] == [{"filename": "invoice-42.pdf", "content_type": "application/pdf"}]
    assert listed["received_at"].endswith("Z")

    raw = sandbox.mail_message(listed["id"])
    assert b"\n.a line that starts with a dot\r\n.\r\nBye" in raw  # dot-stuffing undone
    assert sandbox.stats()["mail"] == {"received": 1, "rejected": 0, "succeeded": 1}


def test_a_folded_message_id_is_listed_without_the_folding_whitespace(sandbox: SandboxProcess):
    # A Message-ID too long for one header line is folded onto the next, as Django's mail does with the
    # ledger's long ids; the listing gives the id itself, comparable with what the sender set.
    message_id = f"<{'1' * 60}.order_confirmation@example.com>"
    with smtplib.SMTP("127.0.0.1", sandbox.smtp_port, timeout=5) as smtp:
        raw = f"From: shop@example.com\r\nTo: ada@example.com\r\nMessage-ID:\r\n {message_id}\r\n\r\nHi\r\n"
        smtp.sendmail("shop@example.com", ["ada@example.com"], raw)

    [listed] = sandbox.mail_messages()
    assert listed["message_id"] == message_id


def test_rset_noop_and_several_messages_on_one_connection(sandbox: SandboxProcess):
    with smtplib.SMTP("127.0.0.1", sandbox.smtp_port, timeout=5) as smtp:
        smtp.ehlo()
        assert smtp.noop()[0] == 250
        smtp.mail("a@example.com")
        smtp.rset()
        for number in (1, 2):
            smtp.sendmail("a@example.com", ["b@example.com"], f"Subject: note {number}\r\n\r\nhi\r\n")
    assert [m["subject"] for m in sandbox.mail_messages()] == ["note 1", "note 2"]
    assert sandbox.stats()["mail"] == {"received": 3, "rejected": 0, "succeeded": 2}


def test_outage_refuses_the_connection_with_421(sandbox: SandboxProcess):
    sandbox.set_fault("mail", outage=True)
    with pytest.raises(smtplib.SMTPConnectError) as error:
        smtplib.SMTP("127.0.0.1", sandbox.smtp_port, timeout=5)
    assert error.value.smtp_code == 421
    assert sandbox.stats()["mail"]["rejected"] == 1 and sandbox.mail_messages() == []


def test_error_rate_answers_451_to_mail_from(sandbox: SandboxProcess):
    sandbox.set_fault("mail", error_rate=1.0)
    with pytest.raises(smtplib.SMTPSenderRefused) as error:
        send(sandbox, invoice_mail())
    assert error.value.smtp_code == 451
    assert sandbox.mail_messages() == []


def test_drop_after_commit_keeps_the_message_but_hangs_up(sandbox: SandboxProcess):
    sandbox.set_fault("mail", drop_after_commit=True)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        send(sandbox, invoice_mail())
    assert len(sandbox.mail_messages()) == 1  # a retrying sender will deliver it twice


def test_a_client_leaving_during_data_leaves_no_partial_message(sandbox: SandboxProcess):
    smtp = smtplib.SMTP("127.0.0.1", sandbox.smtp_port, timeout=5)
    smtp.ehlo()
    smtp.mail("a@example.com")
    smtp.rcpt("b@example.com")
    assert smtp.docmd("DATA")[0] == 354
    smtp.send(b"Subject: cut short\r\n\r\nhalf a mess")
    smtp.close()
    with smtplib.SMTP("127.0.0.1", sandbox.smtp_port, timeout=5) as probe:
        assert probe.noop()[0] == 250  # the catcher is still serving
    deadline = time.monotonic() + 5
    while sandbox.stats()["mail"]["received"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)  # the session notices the hang-up on its own thread
    assert sandbox.stats()["mail"] == {"received": 1, "rejected": 0, "succeeded": 0}
    assert sandbox.mail_messages() == []
