"""Platform scan from the file system (aegir-backend.md §4.1): core version, modules, themes, engines and
install profiles of a Drupal codebase, and its site directories.

Everything is gathered with ONE command on the target (``sh -c SCRIPT sh ROOT``; the script is fixed text,
the root only ever arrives as ``$1``): it finds the docroot (``ROOT``, ``ROOT/web`` or ``ROOT/docroot``),
lists the site directories and ``*.module``/``*.engine``/profile ``*.po`` names, checks that ``sites/`` is
writable, and streams the small files whose content matters (``*.info``, ``*.info.yml``, ``*.install``,
``*.post_update.php``, ``includes/bootstrap.inc``, ``core/lib/Drupal.php``) as an uncompressed tar. Stdout
is a sequence of NUL-terminated tokens (tags start with ``@``; no path the script prints can) ending with
``@tar`` and the tar stream.

Schema versions are what Drupal records for a fresh install of the module (so that a site and its platform
agree): Drupal 6/7 the highest ``hook_update_N``; Drupal 8+ ``max(CORE_MINIMUM_SCHEMA_VERSION, highest
hook_update_N, hook_update_last_removed())`` (``ModuleInstaller::install``: Drupal 10 removed the updates of
8 and 9, so block has no ``hook_update_N`` left and records ``block_update_last_removed()``, 8003). Drupal 8+
packages also carry their ``hook_post_update_NAME`` functions and ``hook_removed_post_updates()``. Hidden and
required modules and themes are scanned like any other (``path_alias`` is hidden, required and enabled on
every Drupal 10 site); only hidden install profiles are left out.
"""

from __future__ import annotations

import io
import posixpath
import re
import tarfile
from dataclasses import asdict, dataclass, field
from typing import Any

from aegir.drupal.versions import drupal_major
from aegir.errors import AegirError, InputError
from aegir.transport.base import Transport

SCAN_TIMEOUT = 600.0
MAX_CONTENT_BYTES = 1 << 20
D8_MINIMUM_SCHEMA = 8000  # \Drupal::CORE_MINIMUM_SCHEMA_VERSION (Drupal 8 to 11)


class NotDrupalError(AegirError):
    """The platform root does not exist or holds no Drupal codebase. Nothing has been changed."""

    exit_code = 2

    def __init__(self, root: str, message: str) -> None:
        self.root = root
        super().__init__(message)


class ScanError(AegirError):
    """The scan command itself failed on the server (not a "this is not Drupal" answer)."""


# -- the command ------------------------------------------------------------------------------------------

# finds the docroot under the current directory (the platform root): sets $doc or prints why not and exits
_FIND_DOCROOT = r"""
doc=
for d in . web docroot; do
  if [ -f "$d/index.php" ] && { [ -f "$d/includes/bootstrap.inc" ] || [ -f "$d/core/lib/Drupal.php" ]; }; then
    doc=$d
    break
  fi
done
if [ -z "$doc" ]; then printf '@aegir-scan\0@notdrupal\0'; exit 0; fi
"""

_ENTER_ROOT = r"""
if [ ! -d "$1" ] || ! cd "$1" 2>/dev/null; then printf '@aegir-scan\0@nodir\0'; exit 0; fi
"""

FIND_DOCROOT_SCRIPT = (
    _ENTER_ROOT
    + _FIND_DOCROOT
    + r"""printf '@aegir-scan\0@docroot\0%s\0' "$doc"
"""
)

# prune what never holds extensions (or is huge): VCS, front-end and composer dependencies, tests (Drupal's
# extension discovery skips them too), libraries and files directories
_PRUNE = (
    r"""\( -name .git -o -name .svn -o -name CVS -o -name node_modules -o -name bower_components """
    r"""-o -name vendor -o -name tests -o -path 'sites/*/files' -o -path 'sites/*/private' """
    r"""-o -path 'sites/all/libraries' -o -path 'profiles/*/libraries' \) -prune"""
)

SCAN_SCRIPT = (
    _ENTER_ROOT
    + _FIND_DOCROOT
    + r"""cd "$doc" || exit 3
printf '@aegir-scan\0@docroot\0%s\0' "$doc"
if [ -d sites ] && [ -w sites ]; then printf '@writable\0'; fi
for s in sites/*; do
  if [ -d "$s" ] && [ -f "$s/settings.php" ]; then
    if [ -L "$s" ]; then printf '@sitelink\0%s\0' "$s"; else printf '@site\0%s\0' "$s"; fi
  fi
done
set --
for p in core/modules core/themes core/profiles modules themes profiles sites/all; do
  if [ -d "$p" ]; then set -- "$@" "$p"; fi
done
printf '@names\0'
if [ $# -gt 0 ]; then
  find -L "$@" """
    + _PRUNE
    + r""" -o -type f \( -name '*.module' -o -name '*.engine' -o -path '*profiles/*.po' \) -print0
fi
printf '@tar\0'
{
  for f in includes/bootstrap.inc core/lib/Drupal.php; do
    if [ -f "$f" ]; then printf '%s\0' "$f"; fi
  done
  if [ $# -gt 0 ]; then
    find -L "$@" """
    + _PRUNE
    + r""" -o -type f -size -"""
    + str(MAX_CONTENT_BYTES + 1)
    + r"""c \( -name '*.info' -o -name '*.info.yml' -o -name '*.install' -o -name '*.post_update.php' \) -print0
  fi
} | tar --null --no-recursion --dereference --hard-dereference --ignore-failed-read -T - -cf -
rc=$?
if [ $rc -gt 1 ]; then exit $rc; fi
exit 0
"""
)


@dataclass
class _Raw:
    docroot_rel: str
    writable: bool
    sites: list[str]
    site_links: list[str]
    names: list[str]
    files: dict[str, bytes]


def _tokens(out: bytes) -> tuple[list[str], bytes]:
    """Split the command output into its tokens and the tar stream that follows ``@tar``."""
    tokens: list[str] = []
    pos = 0
    while True:
        end = out.find(b"\0", pos)
        if end < 0:
            break
        token = out[pos:end].decode("utf-8", errors="surrogateescape")
        pos = end + 1
        if token == "@tar":
            return tokens, out[pos:]
        tokens.append(token)
    return tokens, b""


def _check_header(tokens: list[str], root: str, stderr: str) -> None:
    if not tokens or tokens[0] != "@aegir-scan":
        raise ScanError(f"scanning {root} failed: unexpected output from the scan command; stderr: {stderr[:2000]}")
    if "@nodir" in tokens[1:2]:
        raise NotDrupalError(root, f"{root} does not exist or is not a directory this user can enter")
    if "@notdrupal" in tokens[1:2]:
        raise NotDrupalError(
            root,
            f"{root} is not a Drupal codebase: looked for index.php together with includes/bootstrap.inc "
            f"(Drupal 6/7) or core/lib/Drupal.php (Drupal 8+) in {root}, {root}/web and {root}/docroot",
        )


def _run_scan(transport: Transport, root: str) -> _Raw:
    # a TransportError (connection lost, timeout) propagates as it is: a transient one is worth a retry
    result = transport.run(["sh", "-c", SCAN_SCRIPT, "sh", root], check=False, timeout=SCAN_TIMEOUT)
    stderr = result.stderr.decode(errors="replace").strip()
    tokens, tar_bytes = _tokens(result.stdout)
    _check_header(tokens, root, stderr)
    if result.exit_code != 0 or len(tokens) < 3 or tokens[1] != "@docroot":
        raise ScanError(f"scanning {root} failed (exit code {result.exit_code}); stderr: {stderr[:2000]}")
    raw = _Raw(tokens[2], False, [], [], [], {})
    it = iter(tokens[3:])
    in_names = False
    for token in it:
        if token == "@writable":
            raw.writable = True
        elif token == "@site":
            raw.sites.append(next(it, ""))
        elif token == "@sitelink":
            raw.site_links.append(next(it, ""))
        elif token == "@names":
            in_names = True
        elif in_names:
            raw.names.append(token)
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:", encoding="utf-8", errors="surrogateescape") as tf:
            for member in tf:
                if not member.isfile() or member.size > MAX_CONTENT_BYTES:
                    continue
                f = tf.extractfile(member)
                if f is not None:
                    raw.files[posixpath.normpath(member.name)] = f.read()
    except tarfile.TarError as e:
        raise ScanError(f"scanning {root} failed: the file stream is damaged ({e}); stderr: {stderr[:2000]}") from None
    return raw


# -- public API ---------------------------------------------------------------------------------------------


@dataclass
class Package:
    """One module, theme, engine (or profile) found on a platform."""

    name: str
    type: str  # "module" | "theme" | "profile" | "engine"
    version: str | None
    schema_version: int
    scope: str  # "base" | "sites-all" | "profile:<name>"
    path: str  # relative to the docroot: the .module (D7 module), .info (D7 theme), .info.yml (D8+), .engine
    title: str | None = None
    description: str | None = None
    hidden: bool = False
    last_removed: int | None = None  # Drupal 8+ hook_update_last_removed(): sites below it cannot be updated
    post_updates: list[str] = field(default_factory=list)  # Drupal 8+ <name>_post_update_NAME functions
    removed_post_updates: list[str] = field(default_factory=list)  # ... listed in hook_removed_post_updates()


@dataclass
class Profile:
    name: str
    version: str | None
    languages: list[str]
    old_short_name: str | None
    path: str  # the profile's .info / .info.yml, relative to the docroot
    title: str | None = None
    description: str | None = None


@dataclass
class PlatformScan:
    root: str
    docroot: str
    major: int
    core_version: str
    packages: list[Package]
    profiles: list[Profile]
    sites: list[str]  # site directory names with a settings.php, minus default and symlinks
    sites_writable: bool
    warnings: list[str] = field(default_factory=list)  # unreadable info files and the like

    def package_dicts(self) -> list[dict[str, Any]]:
        return [asdict(p) for p in self.packages]

    def profile_dicts(self) -> list[dict[str, Any]]:
        return [asdict(p) for p in self.profiles]


def _require_absolute(root: str) -> None:
    if not root.startswith("/"):
        raise InputError("root", f"must be an absolute path, not {root!r}")


def find_docroot(transport: Transport, root: str) -> str:
    """The directory of ``root`` that holds Drupal: ``root`` itself, ``root/web`` or ``root/docroot``
    (composer layouts), whichever has index.php with includes/bootstrap.inc or core/lib/Drupal.php."""
    _require_absolute(root)
    result = transport.run(["sh", "-c", FIND_DOCROOT_SCRIPT, "sh", root], check=False, timeout=60)
    tokens, _ = _tokens(result.stdout + b"@tar\0")
    _check_header(tokens, root, result.stderr.decode(errors="replace"))
    if len(tokens) < 3 or tokens[1] != "@docroot":
        raise ScanError(f"looking for Drupal in {root} failed (exit code {result.exit_code})")
    return _join(root, tokens[2])


def _join(root: str, rel: str) -> str:
    return root.rstrip("/") or "/" if rel in (".", "") else posixpath.join(root.rstrip("/") or "/", rel)


_D7_VERSION = re.compile(r"""define\(\s*['"]VERSION['"]\s*,\s*['"]([^'"]+)['"]\s*\)""")
_D8_VERSION = re.compile(r"""const\s+VERSION\s*=\s*['"]([^'"]+)['"]""")
_D8_MIN_SCHEMA = re.compile(r"const\s+CORE_MINIMUM_SCHEMA_VERSION\s*=\s*(\d+)")


def _version_from(text: str, d8: bool) -> str | None:
    m = (_D8_VERSION if d8 else _D7_VERSION).search(text)
    return m.group(1) if m else None


def core_version(transport: Transport, docroot: str) -> tuple[int, str]:
    """(major, version) from ``core/lib/Drupal.php`` (8+) or ``includes/bootstrap.inc`` (6/7)."""
    for rel, d8 in (("core/lib/Drupal.php", True), ("includes/bootstrap.inc", False)):
        path = posixpath.join(docroot, rel)
        if transport.exists(path):
            version = _version_from(transport.read_file(path).decode(errors="replace"), d8)
            if version is None:
                raise NotDrupalError(docroot, f"cannot read the Drupal core version from {path}")
            return drupal_major(version), version
    raise NotDrupalError(
        docroot, f"{docroot} is not a Drupal docroot: neither core/lib/Drupal.php nor includes/bootstrap.inc exists"
    )


_BLOCK_COMMENT = re.compile(r"^[ \t]*/\*.*?\*/", re.MULTILINE | re.DOTALL)


def _code(php: str) -> str:
    return _BLOCK_COMMENT.sub("", php)


def _function_body(code: str, function: str) -> str | None:
    """The text of ``function <function>(…) [: type] {`` up to the first ``}`` at the start of a line (how
    Drupal's coding standard closes a top-level function), or None."""
    m = re.search(rf"^[ \t]*function\s+&?{re.escape(function)}\s*\([^)]*\)[^{{;]*\{{", code, re.MULTILINE)
    if m is None:
        return None
    end = re.compile(r"^\}", re.MULTILINE).search(code, m.end())
    return code[m.end() : end.start() if end else len(code)]


def last_removed_of(install_php: str, module: str) -> int | None:
    """What ``<module>_update_last_removed()`` returns (``return 8003;``), or None."""
    body = _function_body(_code(install_php), f"{module}_update_last_removed")
    m = re.search(r"\breturn\s+(\d+)\s*;", body or "")
    return int(m.group(1)) if m else None


def schema_version_of(install_php: str, module: str, major: int, floor: int | None = None) -> int:
    """The schema version a fresh install of the module records: the highest N of ``function
    <module>_update_N(`` at the start of a line of its .install file (so ``//``/``#`` lines and ``/* … */``
    blocks opened at the start of a line do not count); at least 0 for Drupal 6/7, and for Drupal 8+ at
    least 8000 (``CORE_MINIMUM_SCHEMA_VERSION``, unless ``floor`` says otherwise) and at least what
    ``hook_update_last_removed()`` returns (``ModuleInstaller::install`` records ``max(…)`` of the three)."""
    if floor is None:
        floor = 0 if major < 8 else D8_MINIMUM_SCHEMA
    code = _code(install_php)
    pattern = re.compile(rf"^[ \t]*function\s+&?{re.escape(module)}_update_(\d+)\s*\(", re.MULTILINE)
    numbers = [floor, *(int(n) for n in pattern.findall(code))]
    if major >= 8:
        numbers.append(last_removed_of(install_php, module) or 0)
    return max(numbers)


def post_updates_of(post_update_php: str, name: str) -> tuple[list[str], list[str]]:
    """(the ``<name>_post_update_NAME`` functions defined, the function names ``<name>_removed_post_updates()``
    lists) of a ``<name>.post_update.php``, each sorted."""
    code = _code(post_update_php)
    prefix = re.escape(f"{name}_post_update_")
    defined = re.findall(rf"^[ \t]*function\s+&?({prefix}\w+)\s*\(", code, re.MULTILINE)
    body = _function_body(code, f"{name}_removed_post_updates") or ""
    removed = re.findall(rf"""['"]({prefix}\w+)['"]\s*=>""", body)
    return sorted(set(defined)), sorted(set(removed))


# -- .info (Drupal 6/7) -------------------------------------------------------------------------------------

_INFO_RE = re.compile(
    r"""
    ^\s*                                   # start of a line, leading white space ignored
    ((?:[^=;\[\]]|\[[^\[\]]*\])+?)         # key: no = ; [ ] except balanced, unnested brackets
    \s*=\s*
    (?:
      ("(?:[^"]|(?<=\\)")*")|              # double-quoted value (\" allowed)
      ('(?:[^']|(?<=\\)')*')|              # single-quoted value
      ([^\r\n]*?)                          # unquoted value
    )\s*$
    """,
    re.MULTILINE | re.DOTALL | re.VERBOSE,
)
_PHP_CONSTANTS = {"true": True, "false": False, "null": None}


def _stripslashes(s: str) -> str:
    return re.sub(r"\\(.?)", lambda m: m.group(1), s, flags=re.DOTALL)


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        value = {k: _listify(v) for k, v in value.items()}
        if list(value) == list(range(len(value))):
            return list(value.values())
    return value


def parse_info(text: str) -> dict[str, Any]:
    """Drupal 6/7 ``.info`` (``drupal_parse_info_format``): ``key = value``, quoted values, ``;`` comments,
    ``key[] = x`` lists and ``key[a][b] = v`` nesting. ``TRUE``/``FALSE``/``NULL`` become bool/None; other
    constants (``VERSION``) stay as their name. Arrays with keys 0..n-1 become lists."""
    info: dict[Any, Any] = {}
    for m in _INFO_RE.finditer(text.removeprefix("\ufeff")):
        key, dq, sq, plain = m.group(1), m.group(2), m.group(3), m.group(4)
        value: Any = _stripslashes(dq[1:-1]) if dq else _stripslashes(sq[1:-1]) if sq else (plain or "")
        if re.fullmatch(r"\w+", value) and value.lower() in _PHP_CONSTANTS:
            value = _PHP_CONSTANTS[value.lower()]
        keys = re.split(r"\]?\[", key.rstrip("]"))
        last = keys.pop()
        parent: dict[Any, Any] = info
        for k in keys:
            k2: Any = len(parent) if k == "" else _array_key(k)
            if not isinstance(parent.get(k2), dict):
                parent[k2] = {}
            parent = parent[k2]
        parent[len(parent) if last == "" else _array_key(last)] = value
    return _listify(info)


def _array_key(k: str) -> Any:
    return int(k) if re.fullmatch(r"-?[1-9]\d*|0", k) else k


# -- .info.yml (Drupal 8+): a YAML subset -------------------------------------------------------------------


@dataclass
class _Line:
    indent: int
    text: str
    no: int


class _Yaml:
    """Block mappings and sequences (nested), ``- key: value`` items, flow ``[..]``/``{..}``, quoted and plain
    scalars with comments, plain scalars continued on indented lines, ``|``/``>`` block scalars. Plain
    scalars resolve to bool, None or int only; everything else stays a string (``version: 1.0`` is "1.0")."""

    def __init__(self, text: str) -> None:
        self.raw = text.splitlines()
        self.lines: list[_Line] = []
        self.raw_index: list[int] = []
        for no, line in enumerate(self.raw):
            stripped = line.strip()
            if not stripped or stripped.startswith("#") or stripped in ("---", "..."):
                continue
            body = line.lstrip(" ")
            if body.startswith("\t"):
                raise ValueError(f"line {no + 1}: tabs are not allowed for indentation")
            self.lines.append(_Line(len(line) - len(body), body.rstrip(), no))
        self.i = 0

    def fail(self, msg: str, line: _Line | None = None) -> ValueError:
        where = f"line {line.no + 1}: " if line else ""
        return ValueError(where + msg)

    def parse(self) -> Any:
        if not self.lines:
            return {}
        value = self.block(self.lines[0].indent)
        if self.i < len(self.lines):
            raise self.fail("unexpected indentation", self.lines[self.i])
        return value

    @staticmethod
    def is_item(text: str) -> bool:
        return text == "-" or text.startswith("- ")

    def block(self, indent: int) -> Any:
        return self.sequence(indent) if self.is_item(self.lines[self.i].text) else self.mapping(indent)

    def mapping(self, indent: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.indent < indent or self.is_item(line.text) and line.indent == indent:
                break
            if line.indent > indent:
                raise self.fail("unexpected indentation", line)
            key, rest = self.split_key(line)
            self.i += 1
            out[key] = self.value_after_key(rest, indent, line)
        return out

    def sequence(self, indent: int) -> list[Any]:
        out: list[Any] = []
        while self.i < len(self.lines):
            line = self.lines[self.i]
            if line.indent != indent or not self.is_item(line.text):
                if line.indent > indent:
                    raise self.fail("unexpected indentation", line)
                break
            rest = line.text[1:].lstrip(" ")
            if not rest:
                self.i += 1
                out.append(self.nested(indent, line, allow_same_level_seq=False))
            elif self.key_split_at(rest) is not None and rest[0] not in "[{\"'":
                # "- key: value": the item is a mapping starting on this line
                self.lines[self.i] = _Line(line.indent + (len(line.text) - len(rest)), rest, line.no)
                out.append(self.mapping(self.lines[self.i].indent))
            else:
                self.i += 1
                out.append(self.inline(rest, indent, line))
        return out

    def nested(self, indent: int, line: _Line, *, allow_same_level_seq: bool) -> Any:
        if self.i < len(self.lines):
            nxt = self.lines[self.i]
            if nxt.indent > indent:
                return self.block(nxt.indent)
            if allow_same_level_seq and nxt.indent == indent and self.is_item(nxt.text):
                return self.sequence(indent)
        return None

    def value_after_key(self, rest: str, indent: int, line: _Line) -> Any:
        if not rest or rest.startswith("#"):
            return self.nested(indent, line, allow_same_level_seq=True)
        return self.inline(rest, indent, line)

    def inline(self, rest: str, indent: int, line: _Line) -> Any:
        if rest[0] in "|>":
            return self.block_scalar(rest, indent, line)
        if rest[0] in "[{":
            value, pos = self.flow(rest, 0, line)
            tail = rest[pos:].strip()
            if tail and not tail.startswith("#"):
                raise self.fail("text after a flow collection", line)
            return value
        if rest[0] in "\"'":
            value, pos = self.quoted(rest, 0, line)
            tail = rest[pos:].strip()
            if tail and not tail.startswith("#"):
                raise self.fail("text after a quoted value", line)
            return value
        text = self.strip_comment(rest)
        # a plain scalar may continue on more-indented lines
        while self.i < len(self.lines) and self.lines[self.i].indent > indent:
            more = self.lines[self.i]
            if self.key_split_at(more.text) is not None or self.is_item(more.text):
                raise self.fail("unexpected indentation", more)
            text += " " + self.strip_comment(more.text)
            self.i += 1
        return self.resolve(text)

    def block_scalar(self, header: str, indent: int, line: _Line) -> str:
        style, chomp = header[0], "clip"
        head = self.strip_comment(header[1:])
        if "-" in head:
            chomp = "strip"
        elif "+" in head:
            chomp = "keep"
        start = line.no + 1
        body: list[str] = []
        block_indent = None
        no = start
        while no < len(self.raw):
            raw = self.raw[no]
            if raw.strip():
                ind = len(raw) - len(raw.lstrip(" "))
                if ind <= indent:
                    break
                if block_indent is None:
                    block_indent = ind
                if ind < block_indent:
                    break
                body.append(raw[block_indent:])
            else:
                body.append("")
            no += 1
        while self.i < len(self.lines) and self.lines[self.i].no < no:
            self.i += 1
        trailing = 0
        while body and body[-1] == "":
            body.pop()
            trailing += 1
        if style == "|":
            text = "\n".join(body)
        else:  # folded: single line breaks become spaces, except around blank or more-indented lines
            text = body[0] if body else ""
            for prev, b in zip(body, body[1:], strict=False):
                if b == "":
                    text += "\n"
                elif prev == "":
                    text += b
                elif b.startswith(" ") or prev.startswith(" "):
                    text += "\n" + b
                else:
                    text += " " + b
        if chomp == "strip" or not body:
            return text
        return text + "\n" + ("\n" * trailing if chomp == "keep" else "")

    @staticmethod
    def key_split_at(text: str) -> int | None:
        """Index of the ``:`` that ends a mapping key (outside quotes), or None."""
        if text[0] in "\"'":
            q = text[0]
            j = 1
            while j < len(text):
                if text[j] == q:
                    if q == "'" and text[j + 1 : j + 2] == "'":
                        j += 2
                        continue
                    break
                if q == '"' and text[j] == "\\":
                    j += 1
                j += 1
            j += 1
            rest = text[j:].lstrip(" ")
            return len(text) - len(rest) if rest.startswith(":") and (len(rest) == 1 or rest[1] == " ") else None
        for j, c in enumerate(text):
            if c == "#" and j > 0 and text[j - 1] == " ":
                return None
            if c == ":" and (j + 1 == len(text) or text[j + 1] == " "):
                return j
        return None

    def split_key(self, line: _Line) -> tuple[Any, str]:
        at = self.key_split_at(line.text)
        if at is None:
            raise self.fail(f"expected 'key: value', got {line.text[:60]!r}", line)
        raw_key = line.text[:at].strip()
        key: Any = self.quoted(raw_key, 0, line)[0] if raw_key[:1] in "\"'" else self.resolve(raw_key)
        if key is None or isinstance(key, bool):
            key = raw_key
        return key, line.text[at + 1 :].strip()

    def quoted(self, text: str, pos: int, line: _Line) -> tuple[str, int]:
        q = text[pos]
        out: list[str] = []
        j = pos + 1
        escapes = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", '"': '"', "/": "/", " ": " ", "e": "\x1b"}
        while j < len(text):
            c = text[j]
            if c == q:
                if q == "'" and text[j + 1 : j + 2] == "'":
                    out.append("'")
                    j += 2
                    continue
                return "".join(out), j + 1
            if q == '"' and c == "\\":
                nxt = text[j + 1 : j + 2]
                if nxt in ("u", "x", "U"):
                    n = {"x": 2, "u": 4, "U": 8}[nxt]
                    digits = text[j + 2 : j + 2 + n]
                    if not re.fullmatch(r"[0-9a-fA-F]+", digits or "-") or len(digits) != n:
                        raise self.fail("bad escape in a quoted value", line)
                    out.append(chr(int(digits, 16)))
                    j += 2 + n
                    continue
                if nxt not in escapes:
                    raise self.fail("bad escape in a quoted value", line)
                out.append(escapes[nxt])
                j += 2
                continue
            out.append(c)
            j += 1
        raise self.fail("unterminated quoted value", line)

    def flow(self, text: str, pos: int, line: _Line) -> tuple[Any, int]:
        opener = text[pos]
        closer = "]" if opener == "[" else "}"
        items: list[Any] = []
        mapping: dict[Any, Any] = {}
        j = pos + 1
        while True:
            while j < len(text) and text[j] == " ":
                j += 1
            if j >= len(text):
                raise self.fail("unterminated flow collection", line)
            if text[j] == closer:
                return (items if opener == "[" else mapping), j + 1
            value, j = self.flow_scalar(text, j, line)
            while j < len(text) and text[j] == " ":
                j += 1
            if opener == "{":
                if j >= len(text) or text[j] != ":":
                    raise self.fail("expected ':' in a flow mapping", line)
                j += 1
                while j < len(text) and text[j] == " ":
                    j += 1
                if j < len(text) and text[j] in ",}":
                    mapping[value] = None
                else:
                    mapping[value], j = self.flow_scalar(text, j, line)
            else:
                items.append(value)
            while j < len(text) and text[j] == " ":
                j += 1
            if j < len(text) and text[j] == ",":
                j += 1
            elif j < len(text) and text[j] != closer:
                raise self.fail("expected ',' in a flow collection", line)

    def flow_scalar(self, text: str, j: int, line: _Line) -> tuple[Any, int]:
        if text[j] in "[{":
            return self.flow(text, j, line)
        if text[j] in "\"'":
            return self.quoted(text, j, line)
        m = re.compile(r"[^,\[\]{}]*?(?=\s*(?:[,\]}]|:(?:\s|$)|$))").match(text, j)
        if m is None or m.end() == j:
            raise self.fail("bad flow collection", line)
        return self.resolve(m.group(0).strip()), m.end()

    @staticmethod
    def strip_comment(text: str) -> str:
        if text.startswith("#"):
            return ""
        m = re.search(r"\s#", text)
        return (text[: m.start()] if m else text).strip()

    @staticmethod
    def resolve(text: str) -> Any:
        if text in ("", "~", "null", "Null", "NULL"):
            return None
        if text in ("true", "True", "TRUE"):
            return True
        if text in ("false", "False", "FALSE"):
            return False
        if re.fullmatch(r"[-+]?\d+", text):
            return int(text)
        return text


def parse_info_yml(text: str) -> dict[str, Any]:
    """A Drupal 8+ ``*.info.yml`` (the YAML subset info files use, see ``_Yaml``). ``ValueError`` when the
    text is outside that subset or not a mapping."""
    value = _Yaml(text.removeprefix("\ufeff")).parse()
    if not isinstance(value, dict):
        raise ValueError("an info.yml file must be a mapping")
    return value


# -- the scan -------------------------------------------------------------------------------------------------


def _php_empty(value: Any) -> bool:
    return value in (None, False, "", "0", 0, [], {})


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


def _lang_of(po_name: str) -> str:
    """``de.po`` → ``de``; ``standard-7.80.pt-br.po`` → ``pt-br``."""
    return po_name[: -len(".po")].rsplit(".", 1)[-1]


def _d7_area(path: str) -> tuple[str, str] | None:
    """(``modules``|``themes``, scope) for a path where Drupal 6/7 looks for extensions, else None."""
    parts = path.split("/")
    if len(parts) >= 2 and parts[0] in ("modules", "themes"):
        return parts[0], "base"
    if len(parts) >= 4 and parts[:2] == ["sites", "all"] and parts[2] in ("modules", "themes"):
        return parts[2], "sites-all"
    if len(parts) >= 4 and parts[0] == "profiles" and parts[2] in ("modules", "themes"):
        return parts[2], f"profile:{parts[1]}"
    return None


class _Builder:
    def __init__(self, raw: _Raw, major: int, version: str, min_schema: int) -> None:
        self.raw = raw
        self.major = major
        self.version = version
        self.min_schema = min_schema
        self.warnings: list[str] = []
        self.packages: dict[tuple[str, str, str], Package] = {}
        self.names = set(raw.names)

    def info(self, path: str) -> dict[str, Any] | None:
        data = self.raw.files.get(path)
        if data is None:
            return None
        text = data.decode("utf-8", errors="replace")
        try:
            return parse_info_yml(text) if path.endswith(".yml") else parse_info(text)
        except ValueError as e:
            self.warnings.append(f"{path}: skipped, cannot parse it: {e}")
            return None

    def version_of(self, info: dict[str, Any], path: str) -> str | None:
        v = _text(info.get("version"))
        if v == "VERSION" or (not v and self.major >= 8 and path.startswith("core/")):
            return self.version  # Drupal 8+ core extensions are core's version even without the line
        return v or None

    def schema(self, directory: str, name: str) -> int:
        data = self.raw.files.get(posixpath.join(directory, f"{name}.install"))
        if data is None:
            return 0 if self.major < 8 else self.min_schema
        return schema_version_of(data.decode("utf-8", errors="replace"), name, self.major, floor=self.min_schema)

    def updates(self, directory: str, name: str) -> tuple[int | None, list[str], list[str]]:
        """Drupal 8+: (hook_update_last_removed(), post-update functions, removed post-update functions)."""
        if self.major < 8:
            return None, [], []
        install = self.raw.files.get(posixpath.join(directory, f"{name}.install"))
        last_removed = last_removed_of(install.decode("utf-8", errors="replace"), name) if install else None
        post = self.raw.files.get(posixpath.join(directory, f"{name}.post_update.php"))
        defined, removed = post_updates_of(post.decode("utf-8", errors="replace"), name) if post else ([], [])
        return last_removed, defined, removed

    def add(self, kind: str, name: str, path: str, scope: str, info: dict[str, Any] | None) -> None:
        info = info or {}
        directory = posixpath.dirname(path)
        schema = self.schema(directory, name) if kind == "module" else 0
        version = self.version_of(info, path) if info else (self.version if scope == "base" else None)
        last_removed, post, removed = self.updates(directory, name) if kind in ("module", "theme") else (None, [], [])
        pkg = Package(
            name,
            kind,
            version,
            schema,
            scope,
            path,
            _text(info.get("name")),
            _text(info.get("description")),
            hidden=not _php_empty(info.get("hidden")),
            last_removed=last_removed if kind == "module" else None,
            post_updates=post,
            removed_post_updates=removed,
        )
        self.packages.setdefault((kind, name, scope), pkg)

    def scope(self, path: str, profile_dirs: dict[str, str]) -> str:
        d = posixpath.dirname(path)
        while d not in ("", ".", "/"):
            if d in profile_dirs:
                return f"profile:{profile_dirs[d]}"
            d = posixpath.dirname(d)
        return "sites-all" if path.startswith("sites/all/") else "base"

    def profiles(self, profile_infos: list[tuple[str, str, dict[str, Any]]]) -> list[Profile]:
        out: list[Profile] = []
        for path, name, info in profile_infos:
            if not _php_empty(info.get("hidden")):
                continue
            directory = posixpath.dirname(path)
            langs = {
                _lang_of(posixpath.basename(n))
                for n in self.names
                if n.endswith(".po") and posixpath.dirname(n) in (directory, f"{directory}/translations")
            }
            languages = ["en", *sorted(langs - {"en"})]
            old = "default" if self.major == 7 and name == "standard" else None
            title, desc = _text(info.get("name")), _text(info.get("description"))
            out.append(Profile(name, self.version_of(info, path), languages, old, path, title, desc))
        return sorted(out, key=lambda p: p.name)

    def d7(self) -> list[Profile]:
        profile_infos = []
        for path in sorted(self.raw.files):
            parts = path.split("/")
            if len(parts) == 3 and parts[0] == "profiles" and parts[2] == f"{parts[1]}.info":
                info = self.info(path)
                if info is not None:
                    profile_infos.append((path, parts[1], info))
        for path in sorted(self.names):
            area = _d7_area(path)
            if area is None:
                continue
            directory, base = posixpath.split(path)
            if path.endswith(".module") and area[0] == "modules":
                name = base[: -len(".module")]
                info = self.info(posixpath.join(directory, f"{name}.info"))
                if info is not None:
                    self.add("module", name, path, area[1], info)
            elif path.endswith(".engine") and area[0] == "themes":
                name = base[: -len(".engine")]
                self.add("engine", name, path, area[1], self.info(posixpath.join(directory, f"{name}.info")))
        for path in sorted(self.raw.files):
            area = _d7_area(path)
            if area is None or area[0] != "themes" or not path.endswith(".info"):
                continue
            directory, base = posixpath.split(path)
            name = base[: -len(".info")]
            if posixpath.join(directory, f"{name}.module") in self.names:
                continue  # a module kept among the themes is not a theme
            info = self.info(path)
            if info is not None:
                self.add("theme", name, path, area[1], info)
        return self.profiles(profile_infos)

    def d8(self) -> list[Profile]:
        infos: list[tuple[str, str, dict[str, Any]]] = []
        for path in sorted(self.raw.files):
            if path.endswith(".info.yml"):
                info = self.info(path)
                if info is not None:
                    infos.append((path, posixpath.basename(path)[: -len(".info.yml")], info))
        profile_infos = [(p, n, i) for p, n, i in infos if i.get("type") == "profile"]
        profile_dirs = {posixpath.dirname(p): n for p, n, _ in profile_infos}
        for path, name, info in infos:
            kind = info.get("type")
            if kind not in ("module", "theme"):
                continue
            self.add(kind, name, path, self.scope(path, profile_dirs), info)
        for path in sorted(self.names):
            if path.endswith(".engine"):
                name = posixpath.basename(path)[: -len(".engine")]
                info = self.info(posixpath.join(posixpath.dirname(path), f"{name}.info.yml"))
                self.add("engine", name, path, self.scope(path, profile_dirs), info)
        return self.profiles(profile_infos)


def scan_platform(transport: Transport, root: str) -> PlatformScan:
    """Scan the Drupal codebase at ``root`` (its docroot may be ``root/web`` or ``root/docroot``) with one
    command on the target. ``NotDrupalError`` when there is none."""
    _require_absolute(root)
    raw = _run_scan(transport, root)
    docroot = _join(root, raw.docroot_rel)
    d8 = "core/lib/Drupal.php" in raw.files
    core_file = "core/lib/Drupal.php" if d8 else "includes/bootstrap.inc"
    text = raw.files.get(core_file, b"").decode("utf-8", errors="replace")
    version = _version_from(text, d8)
    if version is None:
        raise NotDrupalError(root, f"cannot read the Drupal core version from {posixpath.join(docroot, core_file)}")
    major = drupal_major(version)
    min_schema = 0
    if major >= 8:
        m = _D8_MIN_SCHEMA.search(text)
        min_schema = int(m.group(1)) if m else D8_MINIMUM_SCHEMA
    builder = _Builder(raw, major, version, min_schema)
    profiles = builder.d8() if major >= 8 else builder.d7()
    packages = sorted(builder.packages.values(), key=lambda p: (p.type, p.name, p.scope))
    sites = sorted(posixpath.basename(s) for s in raw.sites if posixpath.basename(s) not in ("default", "all") and s)
    return PlatformScan(
        root=root,
        docroot=docroot,
        major=major,
        core_version=version,
        packages=packages,
        profiles=profiles,
        sites=sites,
        sites_writable=raw.writable,
        warnings=builder.warnings,
    )
