"""The Prefect notification block of Aegir: failure notices by e-mail, through the configured mail server
(``aegir-mail-server/default``). Configured once (``aegir notify --to …`` or the UI); a Prefect automation's
"send a notification" action can use it too."""

from __future__ import annotations

import asyncio

from prefect.blocks.abstract import NotificationBlock

from aegir.mail import DEFAULT_NAME as MAIL_SERVER
from aegir.notify import Notifications


class AegirEmailNotification(Notifications, NotificationBlock):
    """E-mail to the hosting team about failed tasks, through Aegir's mail server."""

    _block_type_name = "Aegir Email Notification"
    _block_type_slug = "aegir-email-notification"
    _description = "Who is e-mailed about failed Aegir tasks; Aegir uses the document named 'default'."

    def send(self, body: str, subject: str | None = None) -> None:
        """Send now, through ``aegir-mail-server/default`` (raises MailError; ValueError if none is set up)."""
        from blocks.types import AegirMailServer

        AegirMailServer.load(MAIL_SERVER).send(self.message(subject or "notification", body))

    async def notify(self, body: str, subject: str | None = None) -> None:  # type: ignore[override]
        await asyncio.to_thread(self.send, body, subject)
