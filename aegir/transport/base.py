"""The transport contract: everything a flow does to a machine goes through one of these.

Commands are argv lists (never shell strings built from user data). A secret reaches a child process only
as an inherited pipe (``SecretFile`` renders as ``/dev/fd/N``), never through argv, the environment or a
file on disk. Every failure is a ``TransportError`` carrying the command, exit code and stderr, with the
secrets it was handed redacted.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

REDACTED = "********"


@dataclass(frozen=True)
class SecretFile:
    """Secret content handed to a child as an inherited pipe; in argv it renders as ``prefix + /dev/fd/N``.

    ``redact`` lists values that must never appear in error texts (e.g. the password inside ``content``).
    """

    content: str
    prefix: str = ""
    redact: tuple[str, ...] = ()

    def __repr__(self) -> str:  # never show the content
        return f"SecretFile(prefix={self.prefix!r})"

    def render(self, fd_path: str) -> str:
        return self.prefix + fd_path


Arg = str | SecretFile


@dataclass
class CommandResult:
    argv: list[str]
    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""

    @property
    def text(self) -> str:
        return self.stdout.decode(errors="replace")


class TransportError(Exception):
    """A command or file operation failed on a server. ``transient`` marks faults worth retrying."""

    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        command: Sequence[str] | None = None,
        exit_code: int | None = None,
        stderr: str = "",
        host: str = "",
    ) -> None:
        self.message = message
        self.command = list(command) if command is not None else None
        self.exit_code = exit_code
        self.stderr = stderr
        self.host = host
        super().__init__(self._render())

    def _render(self) -> str:
        parts = [self.message]
        if self.command is not None:
            parts.append(f"command: {shlex.join(self.command)}")
        if self.exit_code is not None:
            parts.append(f"exit code {self.exit_code}")
        if self.stderr.strip():
            parts.append(f"stderr: {self.stderr.strip()[:2000]}")
        where = f"[{self.host}] " if self.host else ""
        return where + "; ".join(parts)


class TransportConnectionError(TransportError):
    """The server could not be reached (refused, timed out, connection dropped): worth retrying."""

    transient = True


class HostKeyError(TransportError):
    """The SSH host key is unknown or has changed: never retried, never silently accepted."""


class AuthenticationError(TransportError):
    """The server refused our credentials."""


def redact(text: str, secrets: Sequence[str]) -> str:
    for s in secrets:
        if s:
            text = text.replace(s, REDACTED)
    return text


def display_argv(argv: Sequence[Arg]) -> list[str]:
    """argv as it may be shown in logs and errors: secret files appear as a placeholder."""
    return [a if isinstance(a, str) else a.render("/dev/fd/<secret>") for a in argv]


@runtime_checkable
class Transport(Protocol):
    """What every transport (local, SSH) provides. All paths are absolute paths on the target machine."""

    host: str

    def run(
        self,
        argv: Sequence[Arg],
        *,
        stdin: bytes | BinaryIO | None = None,
        stdout: BinaryIO | None = None,
        check: bool = True,
        timeout: float | None = None,
        cwd: str | None = None,
    ) -> CommandResult:
        """Run argv. ``stdin`` bytes or a readable binary stream; ``stdout`` a writable stream to stream
        output into (then ``CommandResult.stdout`` is empty). With ``check`` a non-zero exit raises."""
        ...

    def read_file(self, path: str) -> bytes: ...

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644, group: str | None = None) -> None:
        """Atomic write: temp file in the same directory, mode/group set, fsync, rename over ``path``."""
        ...

    def exists(self, path: str) -> bool: ...

    def is_dir(self, path: str) -> bool: ...

    def makedirs(self, path: str, mode: int = 0o755, group: str | None = None) -> None:
        """Create ``path`` and missing parents; the leaf gets exactly ``mode`` (and ``group``), even if it
        already existed."""
        ...

    def remove_file(self, path: str) -> None:
        """Remove a file or symlink; missing is fine."""
        ...

    def remove_tree(self, path: str) -> None:
        """Remove a directory tree; missing is fine."""
        ...

    def symlink(self, target: str, link: str) -> None:
        """Create or replace ``link`` pointing at ``target`` (atomically)."""
        ...

    def listdir(self, path: str) -> list[str]: ...

    def push_tree(self, local: str, remote: str, excludes: Sequence[str] = ()) -> None:
        """Copy the local directory ``local`` (contents) into ``remote`` on the target (tar stream)."""
        ...

    def fetch_tree(self, remote: str, local: str) -> None:
        """Copy the target's directory ``remote`` (contents) into the local directory ``local``."""
        ...

    def close(self) -> None: ...
