"""Errors the user can act on. Each one says what is wrong in one line; none ever carries a secret."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class AegirError(Exception):
    """Base class: a failure with a one-line reason for the user (exit code 1)."""

    exit_code = 1


class InputError(AegirError, ValueError):
    """Bad input: names the field and what is allowed (exit code 2). Nothing has been changed."""

    exit_code = 2

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")

    @classmethod
    def from_validation(cls, error: ValidationError) -> InputError:
        first = error.errors(include_input=False, include_url=False)[0]
        field = ".".join(str(p) for p in first["loc"]) or "value"
        ctx_error = (first.get("ctx") or {}).get("error")
        if isinstance(ctx_error, InputError):
            return ctx_error
        msg = first["msg"]
        for prefix in ("Value error, ", "Assertion failed, "):
            if msg.startswith(prefix):
                msg = msg[len(prefix) :]
        if first["type"] == "literal_error":
            msg = msg.replace("Input should be", "must be one of")
        elif first["type"] == "missing":
            msg = "is required"
        return cls(field, msg)


class NotFoundError(AegirError):
    """A context (or other named thing) does not exist."""

    exit_code = 3


class StoreUnavailable(AegirError):
    """The Prefect API that holds the contexts cannot be reached."""

    exit_code = 4
