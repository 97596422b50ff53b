"""Driving Drupal through drush, as Aegir does: drush 8 for Drupal 7, drush 12+ for Drupal 8 and later.

Command lines are exactly what real drush accepts (checked against real drush 8.4.12 on Drupal 7, see
reference/drush8/, and drush 12's command names). Credentials never travel on the command line: drush finds
them by including the site's settings.php, which includes the CLI-only credentials file. Output that may
carry a generated admin password is redacted before it is logged or raised.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from aegir.errors import AegirError
from aegir.transport import Transport

DRUSH_TIMEOUT = 900.0
_PASSWORD_RE = re.compile(r"(User password:\s*)\S+")
_LOGIN_URL_RE = re.compile(r"https?://\S+/user/reset/\d+/\d+/[A-Za-z0-9_-]+(?:/login)?")


class DrushError(AegirError):
    """drush exited non-zero (the message carries its last output lines, redacted)."""


def redact_output(text: str) -> str:
    return _PASSWORD_RE.sub(r"\1********", text)


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

    def argv(self, *args: str) -> list[str]:
        return [self.executable, *self.commands.global_options, "-r", self.root, "-l", self.url, *args]

    def run(self, *args: str, timeout: float = DRUSH_TIMEOUT) -> str:
        """stdout of a successful command (redacted)."""
        return self.run_logged(*args, timeout=timeout)[0]

    def run_logged(self, *args: str, timeout: float = DRUSH_TIMEOUT) -> tuple[str, str]:
        """(stdout, stderr) of a successful command, both redacted: drush logs its messages on stderr."""
        result = self.transport.run(self.argv(*args), check=False, timeout=timeout)
        out = redact_output(result.stdout.decode(errors="replace"))
        err = redact_output(result.stderr.decode(errors="replace"))
        if result.exit_code != 0:
            tail = " | ".join(line.strip() for line in (err or out).strip().splitlines()[-6:] if line.strip())
            raise DrushError(f"drush {args[0]} failed for {self.url} (exit code {result.exit_code}): {tail}")
        return out, err

    # -- commands ------------------------------------------------------------------------------------------
    def site_install(
        self, profile: str, *, site_name: str, site_mail: str, account_mail: str, locale: str | None
    ) -> str:
        args = [
            self.commands.site_install,
            profile,
            f"--account-mail={account_mail}",
            f"--site-mail={site_mail}",
            f"--site-name={site_name}",
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
