"""A real SMTP server on loopback for tests (aiosmtpd): it keeps what it accepts and can be told to refuse
the next recipients or messages with a given reply, as a real mail server does when it is unhappy."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections import deque
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MailServer:
    """The handler of an aiosmtpd server: `received` holds every message it accepted (one per DATA)."""

    def __init__(self) -> None:
        self.received: list[EmailMessage] = []
        self.delay = 0.0  # seconds each DATA takes: widens the window for races
        self._refusals: deque[tuple[str, str]] = deque()
        self._lock = threading.Lock()
        self.controller: Controller | None = None

    @property
    def port(self) -> int:
        assert self.controller is not None
        return self.controller.port

    def refuse(self, command: str, reply: str, mails: int = 1) -> None:
        """Refuse the next `mails` mails with `reply` (e.g. "550 5.1.1 No such user"): every RCPT of each
        (so that no recipient gets it), or its DATA."""
        assert command in ("RCPT", "DATA")
        with self._lock:
            self._refusals.extend([(command, reply)] * mails)

    def _refusal(self, command: str) -> str | None:
        with self._lock:
            if self._refusals and self._refusals[0][0] == command:
                return self._refusals.popleft()[1]
        return None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd's name)
        # Decided once per mail (aiosmtpd starts a new envelope after each DATA or RSET).
        if not hasattr(envelope, "refusal"):
            envelope.refusal = self._refusal("RCPT")
        if envelope.refusal:
            return envelope.refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        if self.delay:
            await asyncio.sleep(self.delay)
        refusal = self._refusal("DATA")
        if refusal:
            return refusal
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.received.append(message)
        return "250 Message accepted for delivery"

    def start(self) -> MailServer:
        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every command at INFO
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
