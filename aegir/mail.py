"""Mail to site owners (the welcome e-mail with the one-time login link), through a configured SMTP server.

``MailServer`` is the one definition of the SMTP settings; ``blocks.types.AegirMailServer`` persists it as
a Prefect block (``aegir-mail-server/default``), editable in the UI.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator

from aegir.contexts import check_hostname, check_port
from aegir.errors import AegirError

DEFAULT_NAME = "default"


class MailError(AegirError):
    transient = False


class MailServer(BaseModel):
    """An SMTP server Aegir sends its e-mail through."""

    host: str = Field(description="SMTP server host")
    port: int = Field(25, description="SMTP port (25, 587 with starttls, 465 with ssl)")
    security: Literal["none", "starttls", "ssl"] = Field("none", description="Connection security")
    username: str | None = Field(None, description="SMTP user (when the server needs a login)")
    password: SecretStr | None = Field(None, description="SMTP password")
    from_address: str = Field("aegir@localhost", description="Sender address of Aegir's e-mail")
    timeout: float = Field(20.0, description="Seconds to wait for the SMTP server")

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        return check_hostname(v)

    @field_validator("port")
    @classmethod
    def _port(cls, v: int) -> int:
        return check_port(v)

    def send(self, message: EmailMessage) -> None:
        message["From"] = message["From"] or self.from_address
        context = ssl.create_default_context()
        try:
            if self.security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with client:
                if self.security == "starttls":
                    client.starttls(context=context)
                if self.username:
                    client.login(self.username, self.password.get_secret_value() if self.password else "")
                client.send_message(message)
        except (OSError, smtplib.SMTPException) as e:
            detail = type(e).__name__ if isinstance(e, smtplib.SMTPAuthenticationError) else str(e)
            raise MailError(f"sending mail through {self.host}:{self.port} failed: {detail}") from None


def welcome_message(*, uri: str, to: str, login_link: str, site_url: str) -> EmailMessage:
    """Aegir's welcome mail (platform/provision_welcome_mail.inc), with the one-time login link."""
    message = EmailMessage()
    message["To"] = to
    message["Subject"] = f"Your new site {uri} has been created."
    message.set_content(
        f"Hello,\n\n"
        f"Your new site {uri} has been created and is ready at {site_url}\n\n"
        f"You can log in as the administrator with this one-time login link (valid for 24 hours, usable once):\n\n"
        f"{login_link}\n\n"
        f"After logging in you will be asked to set your password.\n\n"
        f"-- Aegir\n"
    )
    return message
