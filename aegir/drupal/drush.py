"""Driving Drupal through drush, as Aegir does: drush 8 for Drupal 7, drush 12+ for Drupal 8 and later.

Command lines are exactly what real drush accepts (checked against real drush 8.4.12 on Drupal 7, see
reference/drush8/, and drush 12's command names). Credentials never travel on the command line: drush finds
them by including the site's settings.php, which includes the CLI-only credentials file. Output that may
carry a generated admin password is redacted before it is logged or raised.

A failed command raises :class:`DrushError` naming the command (as it may be shown: secret files as a
placeholder) with drush's own message — its first error lines and its last line, never the stack trace in
between — and logs its whole output on the ``aegir.drush`` logger (the tasks send it to the run's log).
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aegir.errors import AegirError
from aegir.transport import Transport
from aegir.transport.base import Arg, display_argv

DRUSH_TIMEOUT = 900.0
_PASSWORD_RE = re.compile(r"(User password:\s*)\S+")
_LOGIN_URL_RE = re.compile(r"https?://\S+/user/reset/\d+/\d+/[A-Za-z0-9_-]+(?:/login)?")

log = logging.getLogger("aegir.drush")

# drush 8 right-aligns a message's type on its first line and wraps the message over the next ones
_D8_TAG = re.compile(r"^(?P<msg>.*?)\s+\[(?P<type>[a-z]+)\]$")
# drush 12+ starts every message with its type: " [error]  …", " [warning] …"
_D12_TAG = re.compile(r"^\[(?P<type>[a-z]+)\]\s+(?P<msg>.*)$")
# stack traces: PHP's "Stack trace:", "#0 /file(12): f()", "  thrown in …"; Drupal glues " #0 …" to a message
_FRAME = re.compile(r"^(?:#\d+\s|Stack trace:$|thrown in\s)")
_GLUED_TRACE = re.compile(r"\s#0\s.*$")
_ERROR_TYPES = ("error", "warning", "failed", "cancel")
_ERRORISH = re.compile(r"error|exception|fatal|failed|could not|cannot|not found|does not exist|not defined", re.I)
FIRST_ERRORS = 3  # how many of drush's first error messages a DrushError carries
MESSAGE_CLIP = 600  # characters of one message in a DrushError
LOG_CLIP = 200_000  # characters of each stream in the log (head and tail), far below the API's limit per entry


class DrushError(AegirError):
    """drush exited non-zero: the message names the command and carries drush's own error (redacted)."""

    def __init__(self, message: str, *, command: Sequence[str] | None = None, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.command = list(command) if command is not None else None
        self.exit_code = exit_code


def redact_output(text: str) -> str:
    return _PASSWORD_RE.sub(r"\1********", text)


def _messages(text: str) -> list[tuple[str, str]]:
    """drush's messages in ``text`` as (type, message): a drush 8 message joined again from its wrapped lines,
    a drush 12+ one as printed; untyped lines (PHP's own errors, Symfony's error blocks) as ("", line);
    stack-trace frames left out."""
    messages: list[tuple[str, str]] = []
    wrapped = False  # the last message is a drush 8 one, whose next lines may continue it
    for raw in text.splitlines():
        line = " ".join(raw.split())
        if not line or _FRAME.match(line):
            wrapped = False
            continue
        m12 = _D12_TAG.match(line)
        m8 = None if m12 else _D8_TAG.match(line)
        if m12:
            messages.append((m12["type"], _GLUED_TRACE.sub("", m12["msg"])))
            wrapped = False
        elif m8 and m8["msg"]:
            messages.append((m8["type"], m8["msg"]))
            wrapped = True
        elif wrapped and not line.startswith("PHP "):
            kind, msg = messages[-1]
            messages[-1] = (kind, f"{msg} {line}")
        else:
            messages.append(("", _GLUED_TRACE.sub("", line)))
            wrapped = False
    return messages


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def failure_summary(stdout: str, stderr: str) -> str:
    """drush's own message of a failed command: its first error messages (from stderr, where drush logs; from
    stdout when stderr has none — Drupal 7 prints a fatal error there) and its last line, each shortened."""

    def shown(kind: str, msg: str) -> str:
        return _clip(f"[{kind}] {msg}" if kind else msg, MESSAGE_CLIP)

    def errors(messages: list[tuple[str, str]]) -> list[str]:
        return [shown(k, m) for k, m in messages if k in _ERROR_TYPES or (not k and _ERRORISH.search(m))]

    err_messages = _messages(stderr)
    chosen = errors(err_messages) or errors(_messages(stdout)) or [shown(k, m) for k, m in err_messages]
    chosen = chosen[:FIRST_ERRORS]
    last_lines = [line.strip() for line in (stderr if stderr.strip() else stdout).splitlines() if line.strip()]
    if last_lines:
        as_message = _messages(last_lines[-1])
        last = shown(*as_message[0]) if as_message else _clip(" ".join(last_lines[-1].split()), MESSAGE_CLIP)
        if not any(last in c for c in chosen) and not any(m in c for _, m in as_message for c in chosen):
            chosen.append(("… " if chosen else "") + last)
    return " | ".join(chosen) or "no output"


def _clip_log(text: str) -> str:
    if len(text) <= LOG_CLIP:
        return text
    half = LOG_CLIP // 2
    return f"{text[:half]}\n[… {len(text) - LOG_CLIP} characters left out …]\n{text[-half:]}"


def site_url(uri: str, http_port: int) -> str:
    return f"http://{uri}" if http_port == 80 else f"http://{uri}:{http_port}"


@dataclass(frozen=True)
class Commands:
    """The drush command names of one drush generation."""

    site_install: str
    status: str
    user_login: str
    cache_clear: tuple[str, ...]
    pm_list: str
    updatedb: str
    global_options: tuple[str, ...]
    # what updatedb logs when it has cleared the caches itself: drush 8 after running updates, drush 12+ at
    # the end of its update batch (whose last operation is a cache rebuild, --cache-clear being the default)
    updatedb_cleared: str

    def maintenance(self, on: bool) -> list[str]:
        raise NotImplementedError


class Drush8(Commands):
    def maintenance(self, on: bool) -> list[str]:
        return ["vset", "maintenance_mode", "1" if on else "0"]


class Drush12(Commands):
    def maintenance(self, on: bool) -> list[str]:
        return ["state:set", "system.maintenance_mode", "1" if on else "0", "--input-format=integer"]


DRUSH8 = Drush8(
    "site-install", "status", "uli", ("cc", "all"), "pm-list", "updatedb", ("--nocolor",), "'all' cache was cleared."
)
DRUSH12 = Drush12(
    "site:install",
    "status",
    "user:login",
    ("cache:rebuild",),
    "pm:list",
    "updatedb",
    (),
    "Finished performing updates.",
)


def commands_for(major: int) -> Commands:
    if major == 7:
        return DRUSH8
    if major >= 8:
        return DRUSH12
    raise AegirError(f"Drupal {major} is not supported (Drupal 7 with drush 8, Drupal 8+ with drush 12+)")


@dataclass
class Drush:
    """drush for one site: ``drush [--nocolor] -r ROOT -l URL <command> …`` run through a transport."""

    transport: Transport
    executable: str
    root: str
    url: str
    major: int

    @property
    def commands(self) -> Commands:
        return commands_for(self.major)

    def argv(self, *args: str) -> list[Arg]:
        return [self.executable, *self.commands.global_options, "-r", self.root, "-l", self.url, *args]

    def run(self, *args: str, timeout: float = DRUSH_TIMEOUT) -> str:
        """stdout of a successful command (redacted)."""
        return self.run_logged(*args, timeout=timeout)[0]

    def run_logged(self, *args: str, timeout: float = DRUSH_TIMEOUT) -> tuple[str, str]:
        """(stdout, stderr) of a successful command, both redacted: drush logs its messages on stderr."""
        argv = self.argv(*args)
        result = self.transport.run(argv, check=False, timeout=timeout)
        out = redact_output(result.stdout.decode(errors="replace"))
        err = redact_output(result.stderr.decode(errors="replace"))
        if result.exit_code != 0:
            shown = display_argv(argv)
            command = shlex.join(shown)
            log.error(
                "drush %s failed (exit code %d): %s\n--- stdout ---\n%s\n--- stderr ---\n%s",
                args[0],
                result.exit_code,
                command,
                _clip_log(out.rstrip()),
                _clip_log(err.rstrip()),
            )
            raise DrushError(
                f"drush {args[0]} failed for {self.url} (exit code {result.exit_code}): "
                f"{failure_summary(out, err)}; command: {command}",
                command=shown,
                exit_code=result.exit_code,
            )
        return out, err

    # -- commands ------------------------------------------------------------------------------------------
    def site_install(
        self,
        profile: str,
        *,
        sites_subdir: str,
        site_name: str,
        site_mail: str,
        account_mail: str,
        locale: str | None,
    ) -> str:
        """``--sites-subdir`` always: site-install copies default.settings.php into the dir it takes for the
        site when that dir has no settings.php, and without the option it takes it from the uri its own way —
        drush 8 turns ``http://example.com:8088`` into ``sites/example.com.8088``, which does not exist, and
        falls back to ``sites/default``; drush 12+ strips all of ``http://example.com`` and takes
        ``sites/default`` unless sites.php has a key ``http://example.com``. Either writes a stray
        ``sites/default/settings.php``. With the option both take ``sites/<sites_subdir>`` (and bootstrap
        ``http://<sites_subdir>``)."""
        args = [
            self.commands.site_install,
            profile,
            f"--account-mail={account_mail}",
            f"--site-mail={site_mail}",
            f"--site-name={site_name}",
            f"--sites-subdir={sites_subdir}",
        ]
        if locale and locale != "en":
            args.append(f"--locale={locale}")
        out, err = self.run_logged(*args, "-y")
        return "\n".join(part for part in (out.strip(), err.strip()) if part)

    def status(self) -> dict[str, Any]:
        out = self.run(self.commands.status, "--format=json")
        try:
            data = json.loads(out[out.index("{") :])
        except ValueError:
            raise DrushError(f"drush status for {self.url} did not print JSON: {out.strip()[:200]}") from None
        return data if isinstance(data, dict) else {}

    def user_login(self) -> str:
        out = self.run(self.commands.user_login, "--no-browser")
        match = _LOGIN_URL_RE.search(out)
        if not match:
            raise DrushError(f"drush {self.commands.user_login} for {self.url} printed no one-time login URL")
        return match.group(0)

    def maintenance(self, on: bool) -> str:
        return self.run(*self.commands.maintenance(on))

    def cache_clear(self) -> str:
        return self.run(*self.commands.cache_clear)

    def updatedb(self) -> tuple[str, bool]:
        """``updatedb -y``: its output (drush logs on stderr) and whether it cleared the caches itself (it does
        after running updates; with nothing pending it does not)."""
        out, err = self.run_logged(self.commands.updatedb, "-y")
        text = "\n".join(part for part in (out.strip(), err.strip()) if part)
        return text, self.commands.updatedb_cleared in text

    def enabled_modules(self) -> dict[str, Any]:
        out = self.run(self.commands.pm_list, "--type=module", "--status=enabled", "--format=json")
        start = out.find("{")
        return json.loads(out[start:]) if start >= 0 else {}
