"""Build a platform's codebase when its root is missing (aegir-backend.md §3.2, platform verify step 1):
``drush make`` from a makefile, or a git clone. An existing Drupal root is left alone; a half-built root is
removed again, so a failed build can simply be retried."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence

from aegir.drupal.scan import NotDrupalError, find_docroot
from aegir.errors import AegirError, InputError
from aegir.transport.base import Transport, TransportError

_STDERR_TAIL = 2000
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/@\s]+@")

# git must never wait for a password or use a command-running transport: an empty answer from "true"
# makes authentication fail at once (no terminal prompt), and the ext:: protocol stays off
_GIT = ["git", "-c", "core.askPass=true", "-c", "protocol.ext.allow=never", "-c", "advice.detachedHead=false"]


def _redact_url(text: str) -> str:
    """Hide ``user:password@`` in URLs (a git URL may carry a token)."""
    return _USERINFO.sub(r"\1***@", text)


def _tail(stderr: bytes | str) -> str:
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
    text = text.strip()
    return text if len(text) <= _STDERR_TAIL else "…" + text[-_STDERR_TAIL:]


def build_platform(
    transport: Transport,
    *,
    root: str,
    makefile: str | None = None,
    git_url: str | None = None,
    git_ref: str | None = None,
    drush: Sequence[str] = ("drush",),
) -> str:
    """Make sure ``root`` holds a Drupal codebase. Returns ``"exists"`` (nothing done), ``"makefile"``
    (``drush make MAKEFILE ROOT`` run in the makefile's directory) or ``"git"`` (cloned from ``git_url``,
    checked out at ``git_ref`` — a branch, tag or commit — when given)."""
    if not root or not root.startswith("/"):
        raise InputError("root", f"must be an absolute path, not {root!r}")
    root = posixpath.normpath(root)
    if root == "/":
        raise InputError("root", "must not be /")
    if transport.exists(root):
        try:
            find_docroot(transport, root)
        except NotDrupalError as e:
            if makefile or git_url:
                raise NotDrupalError(
                    root,
                    f"{e}; it already exists, so it is not built from the "
                    f"{'makefile' if makefile else 'git_url'}: remove it or choose another root",
                ) from None
            raise
        return "exists"
    if makefile:
        if not drush:
            raise InputError("drush", "a drush command is needed to build from a makefile")
        if "://" not in makefile:
            if not makefile.startswith("/"):
                raise InputError("makefile", f"must be an absolute path or a URL, not {makefile!r}")
            if not transport.exists(makefile):
                raise InputError("makefile", f"{makefile} does not exist on {transport.host}")
        _make_parent(transport, root)
        _build_from_makefile(transport, root, makefile, list(drush))
        return "makefile"
    if git_url:
        git_ref = git_ref or None
        if git_ref is not None and git_ref.startswith("-"):
            raise InputError("git_ref", f"must be a branch, tag or commit name, not {git_ref!r}")
        _make_parent(transport, root)
        _build_from_git(transport, root, git_url, git_ref)
        return "git"
    raise InputError(
        "root",
        f"{root} does not exist and neither makefile nor git_url is set to build it: create the codebase "
        "there, or set makefile (drush make) or git_url (and optionally git_ref) on the platform",
    )


def _make_parent(transport: Transport, root: str) -> None:
    parent = posixpath.dirname(root)
    try:
        if not transport.is_dir(parent):
            transport.makedirs(parent, mode=0o755)
    except TransportError as e:
        if e.transient:
            raise
        raise AegirError(f"cannot create {parent} for the platform: {e}") from None


def _discard(transport: Transport, root: str) -> str:
    """Remove a half-built root; a note for the error message if even that fails."""
    try:
        transport.remove_tree(root)
    except TransportError as e:
        return f" (and removing the half-built {root} failed too: {e})"
    return ""


def _check_built(transport: Transport, root: str, how: str) -> None:
    try:
        find_docroot(transport, root)
    except NotDrupalError as e:
        note = _discard(transport, root)
        raise AegirError(f"{how} finished, but the result is not usable: {e}; it was removed{note}") from None


def _build_from_makefile(transport: Transport, root: str, makefile: str, drush: list[str]) -> None:
    cwd = None if "://" in makefile else posixpath.dirname(makefile)  # drush make resolves relative paths there
    argv = [*drush, "make", makefile, root]
    shown = " ".join(argv)
    try:
        result = transport.run(argv, cwd=cwd, check=False)
    except TransportError as e:
        note = _discard(transport, root)
        if e.transient:  # the connection failed, not the build: let the caller retry
            raise
        raise AegirError(f"building {root} with `{shown}` failed: {e}{note}") from None
    if result.exit_code != 0:
        note = _discard(transport, root)
        raise AegirError(
            f"building {root} with `{shown}` failed (exit code {result.exit_code}): {_tail(result.stderr)}{note}"
        )
    if not transport.exists(root):
        raise AegirError(f"`{shown}` succeeded but did not create {root}")
    _check_built(transport, root, f"`{shown}`")


def _build_from_git(transport: Transport, root: str, url: str, ref: str | None) -> None:
    shown_url = _redact_url(url)
    steps = [[*_GIT, "clone", "--quiet", *(["--no-checkout"] if ref else []), "--", url, root]]
    if ref:
        # checkout after the clone takes branches (a tracking branch is created), tags and commit ids alike
        steps.append([*_GIT, "-C", root, "checkout", "--quiet", ref, "--"])
    for argv in steps:
        what = f"cloning {shown_url} into {root}" if "clone" in argv else f"checking out {ref!r} in {root}"
        try:
            result = transport.run(argv, check=False)
        except TransportError as e:
            note = _discard(transport, root)
            if e.transient:  # the connection failed, not the clone: let the caller retry (URL redacted)
                raise type(e)(
                    _redact_url(e.message),
                    command=[_redact_url(a) for a in e.command] if e.command is not None else None,
                    exit_code=e.exit_code,
                    stderr=_redact_url(e.stderr),
                    host=e.host,
                ) from None
            raise AegirError(_redact_url(f"{what} failed: {e}{note}")) from None
        if result.exit_code != 0:
            note = _discard(transport, root)
            raise AegirError(
                _redact_url(f"{what} failed (git exit code {result.exit_code}): {_tail(result.stderr)}{note}")
            )
    _check_built(transport, root, f"cloning {shown_url}")


SHARED_SITE_DIRS = ("all", "default")


def push_excludes(transport: Transport, root: str) -> list[str]:
    """What a push of the platform ``root`` (read through ``transport``, the master's) leaves out: every site
    dir under ``<docroot>/sites`` but the shared ``all`` and ``default``, and ``sites.php`` — the web server's
    own sites stay authoritative (their files/ and private/ are never overwritten by a push). As tar
    ``--exclude`` patterns relative to ``root``."""
    docroot = find_docroot(transport, root)
    sites = posixpath.join(docroot, "sites")
    rel = posixpath.relpath(sites, root)
    excludes = [f"./{rel}/sites.php"]
    for entry in transport.listdir(sites) if transport.exists(sites) else []:
        if entry not in SHARED_SITE_DIRS and transport.is_dir(posixpath.join(sites, entry)):
            excludes.append(f"./{rel}/{entry}")
    return excludes
