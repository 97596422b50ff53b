"""A site's files on its platform: directories with Aegir's modes, settings.php, the CLI credentials file,
the hash salt and the platform's sites.php map (every site, and its aliases). Everything goes through a
Transport.

:func:`set_permissions` is the one place that gives a site dir's files their group and mode; every task that
writes or moves a site dir (install, verify, restore, clone, migrate, rename) ends with it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence
from urllib.parse import unquote

from aegir.drupal.settings import (
    CREDENTIALS_FILE,
    CREDENTIALS_MODE,
    SALT_FILE,
    SETTINGS_MODE,
    generate_hash_salt,
    render_credentials,
    render_settings,
)
from aegir.services.vhost import DbParams
from aegir.transport import Transport, TransportError

# aegir-backend.md §7.1: (relative path, mode, chgrp to the web group)
SITE_DIRECTORIES: tuple[tuple[str, int, bool], ...] = (
    ("", 0o755, False),
    ("themes", 0o2775, False),
    ("modules", 0o2775, False),
    ("libraries", 0o2775, False),
    ("files", 0o2770, True),
    *((f"files/{d}", 0o2770, True) for d in ("tmp", "images", "pictures", "css", "js", "styles")),
    ("private", 0o2770, True),
    *((f"private/{d}", 0o2770, True) for d in ("files", "temp", "config", "config/sync")),
)
LOCAL_SETTINGS = "local.settings.php"
SITES_PHP = "sites.php"
_SITES_LINE = re.compile(r"^\$sites\['([^']+)'\]\s*=\s*'([^']+)';\s*$")

WEB_TREES = ("files", "private/files", "private/config")
"""Drupal's file trees, relative to the site dir: the web server reads and writes everything in them (uploads,
image styles, aggregates, private files, config exports), so all of it is the web group's, group-readable
and -writable (what Drupal itself gives the files it makes: 0664 / 2775). private/temp holds only PHP's
transient temp files: the directory has its mode, its contents keep theirs."""
READ_ONLY_FILES = ((SALT_FILE, 0o440), (LOCAL_SETTINGS, 0o440))
"""Files in the site dir that PHP must read and never write, besides settings.php (rewritten with its mode
by :func:`write_settings`, as is the credentials file)."""


def site_path(docroot: str, uri: str) -> str:
    return posixpath.join(docroot, "sites", uri)


def _find(transport: Transport, argv: list[str]) -> None:
    """Run ``find``; a file that vanished while find walked the tree (a cache or temp file Drupal removed)
    is no error, anything else is."""
    result = transport.run(["find", *argv], check=False)
    if result.exit_code == 0:
        return
    errors = [line for line in result.stderr.decode(errors="replace").splitlines() if line.strip()]
    if result.exit_code == 1 and errors and all("No such file or directory" in line for line in errors):
        return
    raise TransportError(
        "setting the site's file modes failed",
        command=["find", *argv],
        exit_code=result.exit_code,
        stderr="\n".join(errors),
        host=transport.host,
    )


def set_permissions(transport: Transport, path: str, web_group: str | None) -> None:
    """Give every file of the site dir ``path`` the group and mode install gives it; idempotent, so verify
    repairs drift. The one function for this: install (after drush site-install), verify, and every deploy
    (restore, clone, migrate, rename — archives are extracted with ``--no-same-owner``, a tar copy keeps the
    source's modes) end with it.

    * the directories of :data:`SITE_DIRECTORIES` with their modes (made when missing), the web group on the
      ones Drupal writes;
    * everything in :data:`WEB_TREES`: the web group, group-readable and -writable (directories setgid);
    * :data:`READ_ONLY_FILES` (the hash salt, local.settings.php): 0440, the web group — PHP reads them,
      and Drupal 8+ cannot bootstrap without the salt.

    Owners are left as they are: what Aegir writes or extracts is its own user's, what the web server made
    stays the web server's. Nothing is followed through a symlink: ``find`` never follows one, ``chgrp -h``
    changes the link itself, ``chmod`` runs only on what find saw as a regular file or directory (a tenant
    can put symlinks in the web trees; hard-linked files are left alone as well)."""
    for rel, mode, chgrp in SITE_DIRECTORIES:
        directory = posixpath.join(path, rel) if rel else path
        if not transport.exists(directory):
            transport.makedirs(directory, mode=mode, group=web_group if chgrp else None)
    trees = [posixpath.join(path, t) for t in WEB_TREES]
    web_dirs = [posixpath.join(path, rel) for rel, _, chgrp in SITE_DIRECTORIES if chgrp]
    read_only = [(posixpath.join(path, rel), mode) for rel, mode in READ_ONLY_FILES]
    read_only = [(file, mode) for file, mode in read_only if transport.exists(file)]
    if web_group:  # groups first: a chgrp may clear setgid bits
        not_shared = ["(", "-type", "d", "-o", "-type", "l", "-o", "-links", "1", ")"]
        chgrp = ["!", "-group", web_group, *not_shared, "-exec", "chgrp", "-h", web_group, "{}", "+"]
        _find(transport, [*trees, "-xdev", *chgrp])
        _find(transport, [*web_dirs, *(file for file, _ in read_only), "-maxdepth", "0", *chgrp])
    _find(transport, [*trees, "-xdev", "-type", "d", *_chmod("-2070", "g+rwxs")])
    _find(transport, [*trees, "-xdev", "-type", "f", "-links", "1", *_chmod("-060", "g+rw")])
    exact: dict[int, list[str]] = {}
    for rel, mode, _ in SITE_DIRECTORIES:
        exact.setdefault(mode, []).append(posixpath.join(path, rel) if rel else path)
    for mode, directories in exact.items():
        _find(transport, [*directories, "-maxdepth", "0", "-type", "d", *_chmod(f"{mode:o}", f"{mode:o}")])
    for mode in sorted({m for _, m in read_only}):
        files = [file for file, m in read_only if m == mode]
        _find(transport, [*files, "-maxdepth", "0", "-type", "f", "-links", "1", *_chmod(f"{mode:o}", f"{mode:o}")])


def _chmod(unless: str, mode: str) -> list[str]:
    """find's ``chmod MODE`` of what does not already have ``-perm UNLESS``."""
    return ["!", "-perm", unless, "-exec", "chmod", mode, "{}", "+"]


def ensure_salt(transport: Transport, path: str, web_group: str | None) -> bool:
    """The hash salt is generated once and kept: one-time links and sessions survive every verify."""
    salt = posixpath.join(path, SALT_FILE)
    if transport.exists(salt):
        return False
    transport.write_file(salt, generate_hash_salt() + "\n", mode=0o440, group=web_group)
    return True


def write_settings(
    transport: Transport,
    path: str,
    *,
    major: int,
    uri: str,
    profile: str,
    aliases: Sequence[str],
    include_path: str,
    db: DbParams,
    web_group: str | None,
    site_enabled: bool = True,
) -> None:
    """settings.php (0440, group web: readable by PHP, credentials cloaked) and the credentials file that
    only the user running drush can read; a blank local.settings.php if missing."""
    transport.write_file(posixpath.join(path, CREDENTIALS_FILE), render_credentials(db), mode=CREDENTIALS_MODE)
    text = render_settings(
        major, uri=uri, profile=profile, aliases=list(aliases), include_path=include_path, site_enabled=site_enabled
    )
    transport.write_file(posixpath.join(path, "settings.php"), text, mode=SETTINGS_MODE, group=web_group)
    local = posixpath.join(path, LOCAL_SETTINGS)
    if not transport.exists(local):
        transport.write_file(local, "<?php # local settings.php\n", mode=0o440, group=web_group)


def read_credentials(transport: Transport, path: str) -> DbParams | None:
    """The database parameters a site dir's credentials file holds (None when there is none)."""
    file = posixpath.join(path, CREDENTIALS_FILE)
    if not transport.exists(file):
        return None
    values = dict(re.findall(r"\$_SERVER\['(db_\w+)'\]\s*=\s*'([^']*)';", transport.read_file(file).decode()))
    try:
        return DbParams(
            type=unquote(values["db_type"]),
            name=unquote(values["db_name"]),
            user=unquote(values["db_user"]),
            password=unquote(values["db_passwd"]),
            host=unquote(values["db_host"]),
            port=int(unquote(values["db_port"])),
        )
    except (KeyError, ValueError):
        return None


def _sites_php_lines(transport: Transport, docroot: str, uri: str, keys: Sequence[str]) -> tuple[str, str, list[str]]:
    """``sites/sites.php`` of a docroot: its path, its text and its lines without those of the site ``uri``
    (any line mapping to it) and without lines for ``keys`` (other sites' claims on the same names)."""
    path = posixpath.join(docroot, "sites", SITES_PHP)
    current = transport.read_file(path).decode() if transport.exists(path) else ""
    kept: list[str] = []
    for line in current.splitlines():
        m = _SITES_LINE.match(line)
        if m and (m.group(2) == uri or m.group(1) in keys):
            continue
        if line.strip() in ("<?php", "") and not kept:
            continue
        kept.append(line)
    return path, current, kept


def update_sites_php(transport: Transport, docroot: str, uri: str, aliases: Sequence[str]) -> bool:
    """Map the site in ``sites/sites.php``: its own domain and each alias to ``sites/<uri>``; other sites'
    lines are kept. Every site is mapped, as Aegir does: Drupal 8+ looks for ``sites/<uri>`` only when
    ``sites/sites.php`` exists (``DrupalKernel::findSitePath``; without it every host is ``sites/default``),
    and Drupal 7 takes the same map (its ``conf_path`` reads it when it is there). Returns whether it changed."""
    names = [uri, *(a for a in aliases if a != uri)]
    path, current, kept = _sites_php_lines(transport, docroot, uri, names)
    text = "\n".join(["<?php", *kept, *(f"$sites['{name}'] = '{uri}';" for name in names)]) + "\n"
    if text == current:
        return False
    transport.write_file(path, text, mode=0o644)
    return True


def unmap_sites_php(transport: Transport, docroot: str, uri: str) -> bool:
    """Remove the site's lines (its domain and aliases) from ``sites/sites.php``; other sites' lines are kept
    (the file stays, even empty: on Drupal 8+ its presence is what makes the other sites' dirs found)."""
    path, current, kept = _sites_php_lines(transport, docroot, uri, [uri])
    if not current:
        return False
    text = "\n".join(["<?php", *kept]) + "\n"
    if text == current:
        return False
    transport.write_file(path, text, mode=0o644)
    return True


def set_aside_path(path: str, stamp: str) -> str:
    """Where a site dir is kept while it is being replaced (outside Drupal's host lookup: a dot prefix)."""
    parent, name = posixpath.split(path)
    return posixpath.join(parent, f".{name}.previous-{stamp}")


def move_dir(transport: Transport, src: str, dst: str) -> None:
    """Rename a directory on the target (``dst`` must not exist)."""
    transport.run(["mv", "-T", "--", src, dst])


def move_aside(transport: Transport, path: str, stamp: str) -> str:
    """Move a live site dir to its :func:`set_aside_path` (kept, invisible to Drupal); '' when there is none."""
    if not transport.exists(path):
        return ""
    aside = set_aside_path(path, stamp)
    move_dir(transport, path, aside)
    return aside
