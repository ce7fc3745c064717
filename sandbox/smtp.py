"""A minimal SMTP catcher (RFC 5321 subset, no TLS, no auth) that stores every message it accepts.

Enough for smtplib and Django's SMTP backend: EHLO/HELO, MAIL, RCPT, DATA (dot-unstuffed), RSET, NOOP,
QUIT. Mail faults: outage answers 421 at connect, error_rate 451 on MAIL FROM, reject_recipients 550 on
RCPT, latency delays the reply to DATA, drop_after_commit stores the message and hangs up instead of
answering 250.
"""

from __future__ import annotations

import email
import email.policy
import json
import random
import re
import socketserver
import time
from typing import Any

from sandbox.store import Store
from sandbox.util import new_id, now_iso
from sandbox.web import QuietDisconnects

MAX_LINE = 4096
MAX_MESSAGE = 32 * 1024 * 1024
_ADDRESS = re.compile(r"(?i)^(?:FROM|TO):\s*<?([^<>\s]*)>?")


def save_message(store: Store, sender: str, recipients: list[str], raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    attachments = [
        {"filename": part.get_filename(), "content_type": part.get_content_type()}
        for part in message.walk()
        if not part.is_multipart() and (part.is_attachment() or part.get_filename())
    ]
    message_id = new_id("msg")
    store.execute(
        "INSERT INTO mail VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            message_id,
            sender,
            json.dumps(recipients),
            str(message["subject"] or ""),
            json.dumps(attachments),
            raw,
            now_iso(),
            str(message["message-id"] or "").strip(),  # a folded header keeps its leading whitespace
        ),
    )
    return message_id


def list_messages(store: Store) -> list[dict[str, Any]]:
    rows = store.execute(
        "SELECT id, sender, recipients, subject, attachments, received_at, message_id_header FROM mail "
        "ORDER BY rowid"
    )
    return [
        {
            "id": message_id,
            "from": sender,
            "to": json.loads(recipients),
            "subject": subject,
            "attachments": json.loads(attachments),
            "received_at": received_at,
            "message_id": header or "",  # the Message-ID header the sender set
        }
        for message_id, sender, recipients, subject, attachments, received_at, header in rows
    ]


def raw_message(store: Store, message_id: str) -> bytes | None:
    rows = store.execute("SELECT raw FROM mail WHERE id = ?", (message_id,))
    return rows[0][0] if rows else None


class _Session(socketserver.StreamRequestHandler):
    server: SmtpServer
    timeout = 300

    def handle(self) -> None:
        store = self.server.store
        if store.faults["mail"]["outage"]:
            store.count("mail", rejected=True)
            self._reply("421 4.3.2 sandbox mail outage, try again later")
            return
        self._reply(f"220 {self.server.hostname} ESMTP sandbox mail catcher")
        self.sender: str | None = None
        self.recipients: list[str] = []
        try:
            while True:
                line = self.rfile.readline(MAX_LINE)
                if not line:
                    return
                verb, _, argument = line.decode("utf-8", "replace").strip().partition(" ")
                command = getattr(self, f"smtp_{verb.upper()}", None)
                if command is None:
                    self._reply("502 5.5.2 command not implemented")
                elif command(argument.strip()) is False:
                    return
        finally:
            self._end_transaction()

    def _reply(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")

    def smtp_EHLO(self, argument: str) -> None:
        self._end_transaction()
        self._reply(f"250-{self.server.hostname}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE {MAX_MESSAGE}")

    def smtp_HELO(self, argument: str) -> None:
        self._end_transaction()
        self._reply(f"250 {self.server.hostname}")

    def smtp_MAIL(self, argument: str) -> None:
        found = _ADDRESS.match(argument)
        if found is None:
            self._reply("501 5.5.4 syntax: MAIL FROM:<address>")
            return
        if self.sender is not None:
            self._reply("503 5.5.1 nested MAIL command")
            return
        error_rate = self.server.store.faults["mail"]["error_rate"]
        if error_rate and random.random() < error_rate:
            self.server.store.count("mail", rejected=True)
            self._reply("451 4.3.0 sandbox error_rate fault, try again later")
            return
        self.sender, self.recipients = found.group(1), []
        self._reply("250 2.1.0 OK")

    def smtp_RCPT(self, argument: str) -> None:
        found = _ADDRESS.match(argument)
        if self.sender is None:
            self._reply("503 5.5.1 need MAIL before RCPT")
        elif found is None or not found.group(1):
            self._reply("501 5.5.4 syntax: RCPT TO:<address>")
        elif self.server.store.faults["mail"]["reject_recipients"]:
            self.server.store.count("mail", rejected=True)
            self._reply("550 5.1.1 mailbox unavailable (sandbox reject_recipients fault)")
        else:
            self.recipients.append(found.group(1))
            self._reply("250 2.1.5 OK")

    def smtp_DATA(self, argument: str) -> bool:
        """False hangs up, as the drop_after_commit fault asks."""
        if self.sender is None or not self.recipients:
            self._reply("503 5.5.1 need MAIL and RCPT before DATA")
            return True
        self._reply("354 end data with <CR><LF>.<CR><LF>")
        raw = self._read_data()
        if raw is None:
            self._end_transaction()
            self._reply("552 5.3.4 message too big")
            return True
        save_message(self.server.store, self.sender, self.recipients, raw)
        self._end_transaction(succeeded=True)
        faults = self.server.store.faults["mail"]
        if faults["drop_after_commit"]:
            return False
        if faults["latency_ms"]:
            time.sleep(faults["latency_ms"] / 1000)
        self._reply("250 2.0.0 OK queued")
        return True

    def _read_data(self) -> bytes | None:
        """Read up to the lone dot, undoing dot-stuffing; None if the message is over the size limit."""
        lines: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(MAX_MESSAGE)
            if not line:
                raise ConnectionAbortedError("client left during DATA")  # a partial message is not kept
            if line in (b".\r\n", b".\n"):
                return b"".join(lines) if size <= MAX_MESSAGE else None
            size += len(line)
            if size <= MAX_MESSAGE:
                lines.append(line[1:] if line.startswith(b".") else line)

    def smtp_RSET(self, argument: str) -> None:
        self._end_transaction()
        self._reply("250 2.0.0 OK")

    def smtp_NOOP(self, argument: str) -> None:
        self._reply("250 2.0.0 OK")

    def smtp_QUIT(self, argument: str) -> bool:
        self._reply("221 2.0.0 bye")
        return False

    def _end_transaction(self, succeeded: bool = False) -> None:
        """Count the open transaction, if any (an abandoned one still arrived), and forget it."""
        if self.sender is not None:
            self.server.store.count("mail", succeeded=succeeded)
        self.sender, self.recipients = None, []


class SmtpServer(QuietDisconnects, socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], store: Store) -> None:
        self.store = store
        self.hostname = "sandbox.localhost"
        super().__init__(address, _Session)
