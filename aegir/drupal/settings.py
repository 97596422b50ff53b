"""A site's settings.php (Drupal 7 and 8+) and the CLI credentials file next to it.

Credential cloaking (reference/aegir-backend.md §2.3): settings.php holds no password. Under the web server
the vhost hands PHP ``$_SERVER['db_*']`` (urlencoded); drush and other CLI scripts have no vhost, so
settings.php first includes :data:`CREDENTIALS_FILE`, which sets the same urlencoded ``$_SERVER['db_*']``
values and is readable only by its owner (the Aegir user running drush, mode 0400), never by the web user.
Both paths then go through the same urldecode, and settings.php unsets the variables so that phpinfo() and
error pages do not show them.

Unlike Aegir: the hash salt is read from :data:`SALT_FILE` (generated once, kept across verifies) instead of
being regenerated on every write; Drupal 7's offline switch is ``maintenance_mode`` (Aegir wrote the D6 name);
the header carries no date, so rewriting an unchanged site gives byte-identical files.
"""

from __future__ import annotations

import base64
import importlib.metadata
import re
import secrets
from collections.abc import Sequence

from aegir.errors import InputError
from aegir.services.vhost import DB_KEYS, DbParams, check_abs_path, check_host
from aegir.templating import render

SETTINGS_MODE = 0o440
"""settings.php: owner and the web server's group (``web_group``) read it."""
CREDENTIALS_MODE = 0o400
"""The CLI credentials file: owner only (the Aegir/ssh user running drush); the web user cannot read it."""
CREDENTIALS_FILE = "aegir.credentials.php"
"""In the site dir, next to settings.php."""
SALT_FILE = "private/hash_salt.txt"
"""Relative to the site dir; generated once at install and kept (must be readable by the web group)."""

_PROFILE_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def _version() -> str:
    try:
        return importlib.metadata.version("aegir-flows")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


AEGIR_VERSION = _version()


def php_string(value: str) -> str:
    """``value`` as a single-quoted PHP literal (only ``\\`` and ``'`` need escaping there)."""
    if not isinstance(value, str):
        raise TypeError(f"php_string takes a str, not {type(value).__name__}")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def host_pattern(host: str) -> str:
    """A trusted_host_patterns entry for one validated host name."""
    return "^" + check_host("aliases", host).replace(".", r"\.") + "$"


def generate_hash_salt() -> str:
    """A new hash salt as Drupal makes one (``Crypt::randomBytesBase64(55)``): 74 url-safe characters."""
    return base64.urlsafe_b64encode(secrets.token_bytes(55)).decode().rstrip("=")


def render_settings(
    major: int,
    *,
    uri: str,
    profile: str,
    aliases: Sequence[str],
    include_path: str,
    aegir_version: str = AEGIR_VERSION,
    site_enabled: bool = True,
) -> str:
    """settings.php for Drupal ``major`` (7, or 8 and later).

    ``include_path`` is the directory holding the server-wide ``global.inc`` (``<aegir_root>/config/includes``).
    Every value is checked (:class:`InputError` naming the field) and written as a PHP single-quoted literal.
    """
    if isinstance(major, bool) or not isinstance(major, int) or major < 7:
        raise InputError("major", f"settings.php is generated for Drupal 7 and later; got {major!r}")
    uri = check_host("uri", uri)
    if not isinstance(profile, str) or not _PROFILE_RE.match(profile):
        raise InputError("profile", f"must be a profile machine name (lowercase letters, digits, _); got {profile!r}")
    if isinstance(aliases, str):
        raise InputError("aliases", "must be a list of hostnames, not one string")
    aliases = [a for a in dict.fromkeys(check_host("aliases", a) for a in aliases) if a != uri]
    include_path = check_abs_path("include_path", include_path)
    if not isinstance(aegir_version, str) or not re.match(r"^[A-Za-z0-9.+_-]{1,64}$", aegir_version):
        raise InputError("aegir_version", f"must be a version string; got {aegir_version!r}")
    site = f"sites/{uri}"
    variables = {
        "uri": uri,
        "aegir_version": aegir_version,
        "site_enabled": bool(site_enabled),
        "db_keys": DB_KEYS,
        "q": {
            "profile": php_string(profile),
            "public": php_string(f"{site}/files"),
            "private": php_string(f"{site}/private/files"),
            "temp": php_string(f"{site}/private/temp"),
            "sync": php_string(f"{site}/private/config/sync"),
            "global_inc": php_string(f"{include_path}/global.inc"),
            "credentials": php_string(f"/{CREDENTIALS_FILE}"),
            "salt": php_string(f"/{SALT_FILE}"),
        },
        "trusted_hosts": [php_string(host_pattern(h)) for h in (uri, *aliases)] + [php_string("^localhost$")],
    }
    return render("drupal/settings.7.php.j2" if major == 7 else "drupal/settings.8.php.j2", **variables)


def render_credentials(db: DbParams) -> str:
    """The CLI credentials file: ``$_SERVER['db_*']`` with the urlencoded values the vhost would give PHP."""
    if not isinstance(db, DbParams):
        raise InputError("db", "must be DbParams")
    return render(
        "drupal/credentials.php.j2",
        values=[(php_string(key), php_string(value)) for key, value in db.env().items()],
    )


__all__ = [
    "AEGIR_VERSION",
    "CREDENTIALS_FILE",
    "CREDENTIALS_MODE",
    "SALT_FILE",
    "SETTINGS_MODE",
    "generate_hash_salt",
    "host_pattern",
    "php_string",
    "render_credentials",
    "render_settings",
]
