"""A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it receives: the mail sink."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage, Message

import pytest
from aiosmtpd.controller import Controller

from tests.support.webservers import free_port


@dataclass
class MailSink:
    host: str
    port: int
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def wait_for(self, to: str, timeout: float = 10.0) -> EmailMessage:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.messages:
                if to in str(m["To"]):
                    return m  # type: ignore[return-value]
            time.sleep(0.05)
        raise AssertionError(f"no mail to {to} arrived; got {[str(m['To']) for m in self.messages]}")


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[MailSink]:
    sink = MailSink("127.0.0.1", free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
