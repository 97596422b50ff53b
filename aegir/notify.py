"""Who hears about failed tasks: the e-mail a failed (or crashed) task run sends, through the configured mail
server. ``blocks.types.AegirEmailNotification`` persists the recipients as a Prefect notification block
(``aegir-email-notification/default``), editable in the UI and usable by Prefect automations too."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Any

from pydantic import BaseModel, Field, field_validator

from aegir.errors import InputError

DEFAULT_NAME = "default"
_ADDRESS_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.!#$%&'*+/=?^_`{|}~-@")


def check_address(address: str) -> str:
    address = address.strip()
    local, _, domain = address.partition("@")
    if not local or "." not in domain or not set(address) <= _ADDRESS_CHARS or address.count("@") != 1:
        raise ValueError(f"{address!r} is not an e-mail address (name@example.com)")
    return address


class Notifications(BaseModel):
    """Where failure notices go."""

    to: list[str] = Field(description="E-mail addresses told about failed tasks and failed scheduled backups")
    subject_prefix: str = Field("[aegir]", description="Start of every notification's subject")

    @field_validator("to")
    @classmethod
    def _to(cls, v: list[str]) -> list[str]:
        if not v:
            raise InputError("to", "give at least one e-mail address")
        try:
            return list(dict.fromkeys(check_address(a) for a in v))
        except ValueError as e:
            raise InputError("to", str(e)) from None

    def message(self, subject: str, body: str) -> EmailMessage:
        message = EmailMessage()
        message["To"] = ", ".join(self.to)
        message["Subject"] = f"{self.subject_prefix} {subject}".strip()
        message.set_content(body)
        return message


def failure_notice(
    *, run_name: str, state: str, reason: str, run_id: str, url: str | None, parameters: dict[str, Any]
) -> tuple[str, str]:
    """(subject, body) of a failed task's notice. Parameters never hold secrets (DESIGN §8)."""
    lines = [
        f"The Aegir task {run_name} ended {state}.",
        "",
        f"Reason: {reason or '(none given)'}",
        "",
        f"Flow run: {run_id}" + (f"\n{url}" if url else ""),
        "Parameters: " + ", ".join(f"{k}={v!r}" for k, v in parameters.items() if v is not None),
        "",
        "A failed task has been rolled back (its log says what was undone); a crashed one is finished or rolled",
        "back by the next task on the site, or by: aegir resume " + run_id,
    ]
    return f"{run_name} {state.lower()}", "\n".join(lines) + "\n"
