"""Backup archives (DESIGN §7): one tarball per backup, created and consumed by streaming.

Format
------
``<backup_path>/<uri>-<YYYYmmdd.HHMMSS>.tar.gz`` (gzip, the default, Aegir-compatible) or ``.tar.zst``
(``zstd -T0``): one tar stream holding the site directory's contents at the root (``./settings.php``,
``./files/…``, ``./private/…``; the contents of ``private/temp`` are left out), then ``./database.sql`` and
``./manifest.json``. ``gunzip -c F | tar pxf -`` (Aegir's deploy) and ``tar xzf`` read it. A sidecar
``<archive>.json`` holds the manifest plus ``archive_sha256`` and ``archive_bytes``.

How an archive is built
-----------------------
The dump and the archive are on the master; the site directory is on the master or on a remote web server.

*Site on this machine* (``LocalTransport``; ``_create_local``): one ``tar -c -T -`` writes the whole tar
stream straight into ``gzip``/``zstd -T0``, whose output goes straight into the partial archive file: no
byte of the site passes through Python. tar reads its list of names from a pipe as it goes: ``.`` (the
site) first; meanwhile the dump streams into ``.<name>.tmp/database.sql`` (hashed and counted on the way);
once it is complete its name is sent, and once tar's ``-vv`` listing shows that the site part is done (so
``files_count``/``files_bytes`` are exact) ``manifest.json`` is written and sent. ``--transform`` renames the
two work files to ``./database.sql`` and ``./manifest.json`` (their names before the transform cannot match
the site's excludes). The archive is hashed by reading it back (page cache). The dump runs in parallel with
the site's compression; the dump's own compression follows, as with ``mysqldump | gzip`` + ``tar czf``.

*Site anywhere, e.g. on a remote web server* (``SSHTransport``; ``_create_streamed``): the site's tar must
run there, and a remote tar cannot read the master's dump file. The archive is then a concatenation of
compressed *members* (gzip members / zstd frames, which every decompressor reads back as one stream, so the
result is still one ordinary tar stream):

1. the site part: ``tar -cf - -C <site_path> .`` runs on the site's transport and streams its *uncompressed*
   output to the master. Python scans the tar headers as they pass (the data is not touched: it counts
   files and bytes, refuses FIFOs/devices, and finds where tar's end-of-archive marker starts), forwards
   everything before that marker to a local compressor, and a thread hashes the compressed output and
   writes it into the partial archive. The end-of-archive marker is located by parsing, not by stripping
   trailing zeros (a member's data may itself end in zeros), whatever tar's record size;
2. meanwhile, *in parallel*, the dump streams into a second compressor (Python hashes and counts the raw
   dump on the way) whose output lands in ``.<name>.tmp/database.sql.gz|.zst``. A tar header needs the
   member's size before its data, so the dump member can only be placed once the dump is complete;
   compressing it separately keeps both compressions busy at the same time;
3. then, in order: a small member with the tar header of ``./database.sql`` (size now known), the
   compressed dump copied from the work file, and a last member with the dump's padding, the header and
   content of ``./manifest.json`` and the end-of-archive marker.

Both ways produce the same members in the same order (site, ``./database.sql``, ``./manifest.json``).
``SINGLE_TAR_COMPRESSIONS`` says for which compressions a local site takes the first way.

Safety: the work directory ``.<name>.tmp`` (0700) is created exclusively (a second backup to the same name
is refused) and every file with mode 0600 from the start (``O_EXCL``; the process-wide umask is not touched
because tasks run in threads, the effect is that of umask 077); the archive is written as ``.<name>.partial``,
fsynced, and hard-linked into place only when complete (never overwriting), after its sidecar; then the
directory is fsynced. The backup directory is created 0700. Any failure (dump failure, a dump under
``MIN_DUMP_BYTES``, tar or compressor failure, disk full, a FIFO or device node in the site) removes the
partial files and raises ``ArchiveError``. A remote site needs GNU tar (``--anchored``).

Verification reads the file once (hashing it while it feeds the decompressor, whose output is scanned);
extraction verifies first, then streams the site members to ``tar -x`` on the target and ``database.sql``
into the caller's stream. Members with absolute paths, ``..``, device nodes, FIFOs, paths
through an archived symlink or hard links out of the tree make the whole archive refused.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import tarfile
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

from aegir.errors import AegirError, InputError
from aegir.services.dump import MIN_DUMP_BYTES
from aegir.transport.base import Transport, TransportError
from aegir.transport.childenv import child_env

FORMAT_VERSION = 1
DUMP_MEMBER = "database.sql"
MANIFEST_MEMBER = "manifest.json"
EXTENSIONS = {"gzip": ".tar.gz", "zstd": ".tar.zst"}
# module-level so tests can substitute a failing compressor
COMPRESSORS: dict[str, list[str]] = {"gzip": ["gzip", "-c"], "zstd": ["zstd", "-q", "-T0", "-c"]}
DECOMPRESSORS: dict[str, list[str]] = {"gzip": ["gzip", "-dc"], "zstd": ["zstd", "-q", "-dc"]}
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd"))
SITE_EXCLUDES = ("./private/temp/*", f"./{DUMP_MEMBER}", f"./{MANIFEST_MEMBER}")
# A local site takes the single-tar way for these compressions. zstd -T0 is fast: the cost that counts is
# every byte Python touches, and the single tar touches none of the site's. gzip is the bottleneck itself:
# the streamed way runs two gzip processes at once (site and dump) and wins (~0.85x the raw tools on 2 cores).
SINGLE_TAR_COMPRESSIONS = {"zstd"}

_BLOCK = 512
_RECORD = 10240
_ZERO_BLOCK = bytes(_BLOCK)
_CHUNK = 1 << 20
_F_SETPIPE_SZ = 1031  # fcntl: Linux pipe capacity
_EXT_MAX = 1 << 20  # extended headers (long names, pax records) are buffered: cap them
_MANIFEST_MAX = 1 << 20
_URI_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
# GNU tar exits 1 when a file changed while it was read (a busy site): the archive is still well-formed
_TAR_BENIGN = re.compile(r"(file changed as we read it|File removed before we read it|socket ignored)")


class ArchiveError(AegirError):
    """A backup archive could not be created, or is not one we can trust (the message says why).
    ``transient`` marks a failure worth retrying (the SSH connection to the site's server dropped, the db
    server was unreachable)."""

    transient = False

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass
class ArchiveInfo:
    path: str
    size: int
    sha256: str
    manifest: dict
    warnings: list[str] = field(default_factory=list)


# -- names -------------------------------------------------------------------------------------------------
def archive_name(uri: str, when: datetime, compression: str = "gzip") -> str:
    """``<uri>-<YYYYmmdd.HHMMSS>.tar.gz|.tar.zst`` (an aware ``when`` is converted to UTC)."""
    if not _URI_RE.match(uri or ""):
        raise InputError("uri", f"not a site uri usable in a file name: {uri!r}")
    _extension(compression)
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return f"{uri}-{when:%Y%m%d.%H%M%S}{EXTENSIONS[compression]}"


def _extension(compression: str) -> str:
    try:
        return EXTENSIONS[compression]
    except KeyError:
        raise InputError("compression", f"must be one of {', '.join(EXTENSIONS)}; got {compression!r}") from None


def sidecar_path(path: str) -> str:
    return path + ".json"


# -- tar stream scanning -------------------------------------------------------------------------------
@dataclass
class TarMember:
    name: str
    type: bytes
    size: int = 0
    linkname: str = ""
    mode: int = 0


_REGULAR = (b"0", b"\0", b"7")
_DATA_TYPES = (*_REGULAR, b"S")  # types followed by ``size`` bytes of data
_ALLOWED = {*_REGULAR, b"1", b"2", b"5"}
_TYPE_NAMES = {
    b"3": "a character device",
    b"4": "a block device",
    b"6": "a FIFO",
    b"S": "a sparse file",
    b"V": "a volume label",
    b"M": "a multi-volume continuation",
    b"D": "a GNU dump directory",
}


def _padded(size: int) -> int:
    return -(-size // _BLOCK) * _BLOCK


def _text(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _number(raw: bytes) -> int:
    if raw and raw[0] & 0x80:  # GNU base-256 (sizes over 8 GiB)
        if raw[0] == 0xFF:
            raise ArchiveError("not a tar archive: negative number in a header")
        return int.from_bytes(bytes([raw[0] & 0x7F]) + raw[1:], "big")
    digits = raw.split(b"\0", 1)[0].strip(b" ")
    try:
        return int(digits, 8) if digits else 0
    except ValueError:
        raise ArchiveError("not a tar archive (a header holds garbage)") from None


def _pax_records(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise ArchiveError("not a tar archive (bad pax header)") from None
        if length <= 0:
            raise ArchiveError("not a tar archive (bad pax header)")
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


class _TarScanner:
    """Incremental tar parser. ``feed`` returns the pieces of the stream to keep; data is never copied or
    inspected except for members whose ``on_member`` answer asks for it. Stops at the end-of-archive marker
    (the first all-zero header block), which is never kept."""

    def __init__(self, on_member: Callable[[TarMember], tuple[bool, Callable[[memoryview], None] | None]]):
        self._on_member = on_member
        self._hdr = bytearray()
        self._ext_raw = bytearray()  # pending extended headers with their data, kept with the next member
        self._ext_data = bytearray()
        self._ext_need = 0
        self._ext_type = b""
        self._ext_size = 0
        self._long_name: str | None = None
        self._long_link: str | None = None
        self._pax: dict[str, str] = {}
        self._left = 0  # bytes of the current member's data section (data + padding) still to come
        self._data_left = 0
        self._keep = False
        self._sink: Callable[[memoryview], None] | None = None
        self.eof = False
        self.kept_bytes = 0

    @property
    def between_members(self) -> bool:
        return not (self._hdr or self._ext_need or self._left or self._ext_raw)

    def feed(self, data: bytes) -> list:
        out: list = []
        view = memoryview(data)
        pos, n = 0, len(view)
        while pos < n and not self.eof:
            if self._left:
                take = min(self._left, n - pos)
                piece = view[pos : pos + take]
                if self._data_left:
                    d = min(take, self._data_left)
                    if self._sink is not None:
                        self._sink(piece[:d])
                    self._data_left -= d
                if self._keep:
                    out.append(piece)
                self._left -= take
                pos += take
            elif self._ext_need:
                take = min(self._ext_need, n - pos)
                piece = view[pos : pos + take]
                self._ext_raw += piece
                self._ext_data += piece
                self._ext_need -= take
                pos += take
                if not self._ext_need:
                    self._finish_ext()
            else:
                take = min(_BLOCK - len(self._hdr), n - pos)
                self._hdr += view[pos : pos + take]
                pos += take
                if len(self._hdr) == _BLOCK:
                    block = bytes(self._hdr)
                    self._hdr.clear()
                    self._header(block, out)
        for p in out:
            self.kept_bytes += len(p)
        return out

    def _header(self, block: bytes, out: list) -> None:
        if block == _ZERO_BLOCK:
            if self._ext_raw:
                raise ArchiveError("not a tar archive (an extended header without its member)")
            self.eof = True
            return
        stored = _number(block[148:156])
        if stored != sum(block) - sum(block[148:156]) + 8 * 32:
            raise ArchiveError("not a tar archive (bad header checksum)")
        kind = block[156:157]
        size = _number(block[124:136])
        if kind in (b"L", b"K", b"x", b"g"):
            if size > _EXT_MAX:
                raise ArchiveError(f"refusing an extended tar header of {size} bytes")
            self._ext_raw += block
            self._ext_type, self._ext_size = kind, size
            self._ext_data = bytearray()
            self._ext_need = _padded(size)
            if not self._ext_need:
                self._finish_ext()
            return
        name = _text(block[0:100])
        linkname = _text(block[157:257])
        if block[257:263] == b"ustar\0":  # POSIX ustar: the prefix field extends the name
            prefix = _text(block[345:500])
            if prefix:
                name = f"{prefix}/{name}"
        if self._long_name is not None:
            name = self._long_name
        if self._long_link is not None:
            linkname = self._long_link
        if "path" in self._pax:
            name = self._pax["path"]
        if "linkpath" in self._pax:
            linkname = self._pax["linkpath"]
        if "size" in self._pax:
            try:
                size = int(self._pax["size"])
            except ValueError:
                raise ArchiveError("not a tar archive (bad pax size)") from None
        member = TarMember(name=name, type=kind, size=size, linkname=linkname, mode=_number(block[100:108]))
        raw = bytes(self._ext_raw) + block if self._ext_raw else block
        self._ext_raw.clear()
        self._long_name = self._long_link = None
        self._pax = {}
        keep, sink = self._on_member(member)
        if keep:
            out.append(raw)
        has_data = kind in _DATA_TYPES or kind not in _ALLOWED
        self._data_left = size if has_data else 0
        self._left = _padded(size) if has_data else 0
        self._keep, self._sink = keep, sink

    def _finish_ext(self) -> None:
        data = bytes(self._ext_data[: self._ext_size])
        self._ext_data = bytearray()
        if self._ext_type == b"L":
            self._long_name = _text(data)
        elif self._ext_type == b"K":
            self._long_link = _text(data)
        elif self._ext_type == b"x":
            self._pax.update(_pax_records(data))
        # "g" (pax global header): nothing we use


# -- member safety ---------------------------------------------------------------------------------------
def _normalise(name: str) -> tuple[str | None, str]:
    """(normalised name, "") or (None, why it is unsafe)."""
    if not name:
        return None, "an empty name"
    if "\0" in name:
        return None, "a NUL byte in the name"
    if name.startswith("/"):
        return None, "an absolute path"
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None, "a '..' path component"
    return "/".join(parts) or ".", ""


class _MemberCheck:
    """Refuses what could write outside the target directory or create what a site never holds."""

    def __init__(self) -> None:
        self.symlinks: set[str] = set()

    def _through_symlink(self, name: str) -> str | None:
        parts = name.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            if prefix in self.symlinks:
                return prefix
        return None

    def __call__(self, member: Any) -> str:
        raw_name = member.name
        kind = member.type if isinstance(member.type, bytes) else str(member.type).encode()
        name, why = _normalise(raw_name)
        if name is None:
            raise ArchiveError(f"unsafe member {raw_name!r} ({why}): refusing the archive")
        if kind not in _ALLOWED:
            what = _TYPE_NAMES.get(kind, f"an unsupported member type {kind!r}")
            raise ArchiveError(f"unsafe member {raw_name!r} ({what}): refusing the archive")
        link = self._through_symlink(name)
        if link is not None:
            raise ArchiveError(
                f"unsafe member {raw_name!r} (its path goes through the archived symlink {link!r}): "
                "refusing the archive"
            )
        if kind == b"2":
            if name == ".":
                raise ArchiveError("unsafe member '.' (the root is a symlink): refusing the archive")
            self.symlinks.add(name)
        elif kind == b"1":
            target, why = _normalise(member.linkname or "")
            if target is None or target == ".":
                raise ArchiveError(
                    f"unsafe member {raw_name!r} (a hard link to {member.linkname!r}: {why or 'the root'}): "
                    "refusing the archive"
                )
            if target in (DUMP_MEMBER, MANIFEST_MEMBER) or self._through_symlink(target) or target in self.symlinks:
                raise ArchiveError(
                    f"unsafe member {raw_name!r} (a hard link to {member.linkname!r}): refusing the archive"
                )
        return name


def tar_members_safe(members: Iterable[Any]) -> None:
    """Raise ``ArchiveError`` unless every member (``TarMember`` or ``tarfile.TarInfo``) is safe to extract:
    relative, no ``..``, regular files / directories / symlinks / hard links inside the tree only, nothing
    below an archived symlink."""
    check = _MemberCheck()
    for m in members:
        check(m)


# -- small helpers -------------------------------------------------------------------------------------------
def _write_all(fd: int, data) -> None:
    view = memoryview(data).cast("B")
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _create_exclusive(path: str, *, readable: bool = False) -> int:
    access = os.O_RDWR if readable else os.O_WRONLY
    try:
        fd = os.open(path, access | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise ArchiveError(f"{path} already exists (another backup of this site being written?)") from None
    except OSError as e:
        raise ArchiveError(f"cannot create {path}: {e.strerror}") from None
    os.fchmod(fd, 0o600)
    return fd


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _publish(tmp: str, final: str) -> None:
    """Put ``tmp`` in place at ``final`` without ever overwriting an existing file."""
    try:
        os.link(tmp, final)
    except FileExistsError:
        raise ArchiveError(f"{final} already exists: refusing to overwrite it") from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(final):  # a file system without hard links
            raise ArchiveError(f"{final} already exists: refusing to overwrite it") from None
        os.rename(tmp, final)
        return
    os.unlink(tmp)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _ensure_backup_dir(directory: str) -> None:
    if os.path.isdir(directory):
        return
    if os.path.lexists(directory):
        raise ArchiveError(f"backup directory {directory} exists and is not a directory")
    try:
        os.makedirs(os.path.dirname(directory), exist_ok=True)
        os.mkdir(directory, 0o700)
        os.chmod(directory, 0o700)
    except FileExistsError:
        if not os.path.isdir(directory):
            raise ArchiveError(f"backup directory {directory} exists and is not a directory") from None
    except OSError as e:
        raise ArchiveError(f"cannot create backup directory {directory}: {e.strerror}") from None


def _collect(stream, into: list[bytes]) -> threading.Thread:
    def run() -> None:
        with contextlib.suppress(OSError, ValueError):
            into.append(stream.read())

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _err_text(chunks: list[bytes]) -> str:
    return b"".join(chunks).decode(errors="replace").strip()[:2000]


def _compress_small(compression: str, data: bytes) -> bytes:
    """A short piece (headers, manifest, end marker) as one self-contained compressed member."""
    if compression == "gzip" and COMPRESSORS["gzip"] == ["gzip", "-c"]:
        c = zlib.compressobj(6, zlib.DEFLATED, 31)
        return c.compress(data) + c.flush()
    try:
        r = subprocess.run(COMPRESSORS[compression], input=data, capture_output=True, check=False, env=child_env())
    except OSError as e:
        raise ArchiveError(f"cannot start {COMPRESSORS[compression][0]}: {e.strerror}") from None
    if r.returncode != 0:
        raise ArchiveError(f"{COMPRESSORS[compression][0]} failed: {r.stderr.decode(errors='replace').strip()}")
    return r.stdout


def _tar_header(name: str, size: int, mtime: float) -> bytes:
    info = tarfile.TarInfo(f"./{name}")
    info.size = size
    info.mode = 0o600
    info.mtime = int(mtime)
    info.uid = os.getuid()
    info.gid = os.getgid()
    return info.tobuf(format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape")


def _is_disk_full(text: str) -> bool:
    return "No space left on device" in text or "Disk quota exceeded" in text


# -- create ------------------------------------------------------------------------------------------------
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class _Job:
    """The files of one archive being written. Temp files live in the work directory ``.<name>.tmp`` (0700,
    created exclusively: a second backup to the same name is refused), the archive itself is written to
    ``.<name>.partial`` in the backup directory and hard-linked into place."""

    path: str
    compression: str
    site_transport: Transport
    site_path: str
    dump: Callable[[BinaryIO], int]
    manifest: dict
    started: float = field(default_factory=time.time)

    @property
    def directory(self) -> str:
        return os.path.dirname(self.path)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def partial(self) -> str:
        return os.path.join(self.directory, f".{self.name}.partial")

    @property
    def work(self) -> str:
        return os.path.join(self.directory, f".{self.name}.tmp")

    @property
    def sidecar(self) -> str:
        return sidecar_path(self.path)

    @property
    def tool(self) -> str:
        return COMPRESSORS[self.compression][0]

    def final_manifest(self, dump_sha256: str, dump_bytes: int, files_count: int, files_bytes: int) -> dict:
        m = dict(self.manifest)
        m.update(
            format_version=FORMAT_VERSION,
            created=self.manifest.get("created")
            or datetime.fromtimestamp(self.started, UTC).isoformat(timespec="seconds"),
            compression=self.compression,
            dump_sha256=dump_sha256,
            dump_bytes=dump_bytes,
            files_count=files_count,
            files_bytes=files_bytes,
        )
        return m

    def check_dump_size(self, dump_bytes: int) -> None:
        if dump_bytes < MIN_DUMP_BYTES:
            raise ArchiveError(
                f"the database dump is only {dump_bytes} bytes (minimum {MIN_DUMP_BYTES}): refusing to make a "
                "backup of it"
            )


def create_archive(
    *,
    path: str,
    site_transport: Transport,
    site_path: str,
    dump: Callable[[BinaryIO], int],
    manifest: dict,
    compression: str = "gzip",
) -> ArchiveInfo:
    """Write the backup archive ``path`` (and its sidecar) from the site directory ``site_path`` on
    ``site_transport`` and the database dump that ``dump(out)`` streams into ``out``. See the module doc."""
    ext = _extension(compression)
    path = os.path.abspath(path)
    directory, name = os.path.split(path)
    if not name.endswith(ext) or not _NAME_RE.match(name):
        raise ArchiveError(f"{path}: a {compression} archive must be named <uri>-<date>{ext}")
    if not posixpath.isabs(site_path) or "\0" in site_path:
        raise InputError("site_path", f"must be an absolute path; got {site_path!r}")
    try:
        json.dumps(manifest)
    except (TypeError, ValueError) as e:
        raise ArchiveError(f"the manifest cannot be written as JSON: {e}") from None
    _ensure_backup_dir(directory)
    job = _Job(path, compression, site_transport, site_path, dump, manifest)
    for p in (path, job.sidecar):
        if os.path.lexists(p):
            raise ArchiveError(f"{p} already exists: refusing to overwrite it")
    try:
        os.mkdir(job.work, 0o700)
    except FileExistsError:
        raise ArchiveError(f"{job.work} exists: another backup to {path} is being written") from None
    except OSError as e:
        raise ArchiveError(f"cannot create {job.work}: {e.strerror}") from None
    fd = -1
    try:
        os.chmod(job.work, 0o700)
        fd = _create_exclusive(job.partial, readable=True)
        if _single_tar(job):
            digest, size, final, warnings = _create_local(job, fd)
        else:
            digest, size, final, warnings = _create_streamed(job, fd)
        _publish_archive(job, fd, digest, size, final)
        return ArchiveInfo(path=path, size=size, sha256=digest, manifest=final, warnings=warnings)
    except BaseException as e:
        _unlink(job.partial)
        if isinstance(e, OSError):
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ArchiveError(f"disk full writing the backup in {directory}: {e.strerror}") from None
            raise ArchiveError(f"cannot write the backup {path}: {e.strerror or e}") from None
        raise
    finally:
        if fd >= 0:
            os.close(fd)
        shutil.rmtree(job.work, ignore_errors=True)


def _publish_archive(job: _Job, fd: int, digest: str, size: int, manifest: dict) -> None:
    """fsync, then the sidecar (an archive never exists without it), then the archive; never overwriting."""
    os.fsync(fd)
    record = {**manifest, "archive_sha256": digest, "archive_bytes": size}
    side_tmp = os.path.join(job.work, "sidecar.json")
    sfd = _create_exclusive(side_tmp)
    try:
        _write_all(sfd, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
        os.fsync(sfd)
    finally:
        os.close(sfd)
    _publish(side_tmp, job.sidecar)
    published = [job.sidecar]
    try:
        _publish(job.partial, job.path)
        published.append(job.path)
        _fsync_dir(job.directory)
    except BaseException:
        for p in published:
            _unlink(p)
        raise


def _single_tar(job: _Job) -> bool:
    """The site is on this machine: one local tar writes the whole stream (see ``_create_local``)."""
    from aegir.transport.local import LocalTransport

    return (
        isinstance(job.site_transport, LocalTransport)
        and job.compression in SINGLE_TAR_COMPRESSIONS
        and not any(c in job.directory for c in "\n\\")
    )


class _HashWriter:
    """What the dump callable writes into: hashes and counts, then passes the bytes on (to the dump's
    compressor, or to a file descriptor). A failure to pass them on is recorded."""

    def __init__(self, dst: BinaryIO | None = None, fd: int = -1) -> None:
        self.dst = dst
        self.fd = fd
        self.sha = hashlib.sha256()
        self.count = 0
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            if self.dst is not None:
                self.dst.write(data)
            else:
                _write_all(self.fd, data)
        except OSError as e:
            self.error = self.error or e
            raise
        self.sha.update(data)
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        if self.dst is not None:
            self.dst.flush()


def _run_dump(job: _Job, writer: _HashWriter, errors: list[BaseException], after=None) -> threading.Thread:
    def run() -> None:
        try:
            job.dump(writer)
            writer.flush()
        except BaseException as e:  # reported by the caller, after the tools' own verdicts
            errors.append(e)
        finally:
            if after is not None:
                after()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _dump_failure(job: _Job, writer: _HashWriter, errors: list[BaseException]) -> None:
    if writer.error is not None and writer.error.errno in (errno.ENOSPC, errno.EDQUOT):
        raise ArchiveError(f"disk full writing the backup in {job.directory}: {writer.error.strerror}")
    if errors:
        e = errors[0]
        raise ArchiveError(
            f"the database dump failed: {e}" if str(e) else f"the database dump failed: {e!r}",
            transient=bool(getattr(e, "transient", False)),
        )


def _tar_verdict(job: _Job, exit_code: int, messages: list[str]) -> list[str]:
    """Warnings if tar's outcome is acceptable; raises otherwise. GNU tar exits 1 when a file changed while
    it was read (a busy site): the archive is still well-formed."""
    text = "; ".join(m.strip() for m in messages if m.strip())
    if exit_code == 0 or (exit_code == 1 and all(_TAR_BENIGN.search(m) for m in messages if m.strip())):
        return [m for m in messages if m.strip()]
    if _is_disk_full(text):
        raise ArchiveError(f"disk full writing the backup in {job.directory}: {text[:2000]}")
    raise ArchiveError(
        f"tar of the site directory {job.site_path} on {job.site_transport.host} failed (exit {exit_code}): "
        f"{text[:2000]}"
    )


def _special(kind: str, name: str, site_path: str) -> ArchiveError:
    return ArchiveError(
        f"the site directory {site_path} holds {kind} {name!r}: a backup cannot hold FIFOs or device nodes "
        "(they could not be restored); remove it"
    )


# -- create, local site: one tar --------------------------------------------------------------------------
_LISTED_SPECIAL = {"p": "a FIFO", "c": "a character device", "b": "a block device"}


class _Listing:
    """Reads tar's ``-vv`` listing (stderr): counts the site's regular files and bytes until the dump's own
    entry shows up (everything before it is the site), notes FIFOs/devices, keeps tar's messages."""

    def __init__(self, stream, marker: str) -> None:
        self.stream = stream
        self.marker = marker
        self.files = 0
        self.bytes = 0
        self.special: list[tuple[str, str]] = []
        self.messages: list[str] = []
        self.seen = threading.Event()  # the marker entry was listed, or tar's stderr ended
        self.marker_seen = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for raw in self.stream:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                parts = line.split(None, 5)
                if line.startswith("tar: ") or len(parts) < 6 or len(parts[0]) != 10:
                    if len(self.messages) < 200:
                        self.messages.append(line)
                    continue
                if self.marker_seen:
                    continue
                if parts[5] == self.marker:
                    self.marker_seen = True
                    self.seen.set()
                    continue
                kind = parts[0][0]
                if kind in "-C":
                    self.files += 1
                    with contextlib.suppress(ValueError):
                        self.bytes += int(parts[2])
                elif kind in "pcb":
                    self.special.append(
                        ({"p": "a FIFO", "c": "a character device"}.get(kind, "a block device"), parts[5])
                    )
        except (OSError, ValueError):
            pass
        finally:
            self.seen.set()


def _create_local(job: _Job, fd: int) -> tuple[str, int, dict, list[str]]:
    """The site directory is on this machine. One ``tar -c -T -`` writes the whole archive stream straight
    into the compressor, whose output goes straight into the partial file: no byte of the site passes
    through Python. tar reads its names from stdin as it goes: ``.`` (the site) first, then, once the dump
    (written meanwhile into the work directory, hashed on the way) is complete, the dump file, and then the
    manifest (written when tar's ``-vv`` listing shows the site part is done, so files_count is exact).
    ``--transform`` renames the two work files to ``./database.sql`` and ``./manifest.json``: their names
    before the transform cannot match the site's excludes."""
    rel = f".{job.name}.tmp"
    dump_path = os.path.join(job.work, DUMP_MEMBER)
    manifest_path = os.path.join(job.work, MANIFEST_MEMBER)
    transform = "s,^" + re.escape(rel).replace("\\-", "-") + "/,./,SH"  # BRE: only the dots need escaping
    argv = [
        "tar",
        "-c",
        "-vv",
        "-f",
        "-",
        "--anchored",
        *(f"--exclude={e}" for e in SITE_EXCLUDES),
        f"--transform={transform}",
        "-C",
        job.site_path,
        "-T",
        "-",
    ]
    dfd = _create_exclusive(dump_path)
    writer = _HashWriter(fd=dfd)
    dump_errors: list[BaseException] = []
    r, w = os.pipe()
    with contextlib.suppress(OSError):
        fcntl.fcntl(w, _F_SETPIPE_SZ, _CHUNK)
    comp = tar = None
    try:
        comp = _start(COMPRESSORS[job.compression], stdin=r, stdout=fd, stderr=subprocess.PIPE)
        tar = _start(argv, stdin=subprocess.PIPE, stdout=w, stderr=subprocess.PIPE)
    except BaseException:
        for proc in (comp, tar):
            if proc is not None:
                proc.kill()
                proc.wait()
        os.close(dfd)
        raise
    finally:
        os.close(r)
        os.close(w)
    comp_err: list[bytes] = []
    comp_err_t = _collect(comp.stderr, comp_err)
    listing = _Listing(tar.stderr, f"{rel}/{DUMP_MEMBER}")

    def names(text: str, close: bool = False) -> bool:
        try:
            tar.stdin.write(text.encode())
            tar.stdin.flush()
            if close:
                tar.stdin.close()
            return True
        except (OSError, ValueError):
            return False

    final: dict | None = None
    try:
        names(".\n")
        dump_thread = _run_dump(job, writer, dump_errors, after=lambda: os.close(dfd))
        dump_thread.join()
        _dump_failure(job, writer, dump_errors)
        job.check_dump_size(writer.count)
        names(f"-C{job.directory}\n{rel}/{DUMP_MEMBER}\n")
        while not listing.seen.wait(0.2):
            if tar.poll() is not None:
                listing.thread.join(5)
        if listing.marker_seen and not listing.special:
            final = job.final_manifest(writer.sha.hexdigest(), writer.count, listing.files, listing.bytes)
            mfd = _create_exclusive(manifest_path)
            try:
                _write_all(mfd, (json.dumps(final, indent=2, sort_keys=True) + "\n").encode())
            finally:
                os.close(mfd)
            names(f"{rel}/{MANIFEST_MEMBER}\n", close=True)
    finally:
        if final is None:  # a failure: stop tar (the compressor then sees EOF)
            tar.kill()
        with contextlib.suppress(OSError, ValueError):
            tar.stdin.close()
        tar.wait()
        listing.thread.join()
        comp.wait()
        comp_err_t.join()
    comp_text = _err_text(comp_err)
    if _is_disk_full(comp_text):
        raise ArchiveError(f"disk full writing the backup in {job.directory}: {comp_text}")
    if listing.special:
        raise _special(*listing.special[0], job.site_path)
    if comp.returncode != 0:  # first: its death makes tar fail with SIGPIPE
        raise ArchiveError(f"{job.tool} failed (exit {comp.returncode}): {comp_text}")
    warnings = _tar_verdict(job, tar.returncode, listing.messages)
    if final is None or not listing.marker_seen:
        raise ArchiveError(f"tar did not archive the database dump: {' '.join(listing.messages)[:2000]}")
    sha = hashlib.sha256()
    size = 0
    os.lseek(fd, 0, os.SEEK_SET)
    while chunk := os.read(fd, _CHUNK):
        sha.update(chunk)
        size += len(chunk)
    return sha.hexdigest(), size, final, warnings


# -- create, any transport: a streamed site tar ----------------------------------------------------------------
class _SiteSink:
    """The site tar's stdout: scanned, trimmed before its end-of-archive marker, fed to the compressor."""

    def __init__(self, scanner: _TarScanner, dst: BinaryIO) -> None:
        self.scanner = scanner
        self.dst = dst
        self.error: BaseException | None = None

    def write(self, data) -> int:
        if self.error is not None:
            raise OSError("the archive pipeline has failed")
        try:
            pieces = self.scanner.feed(data)
            if len(pieces) == 1:
                self.dst.write(pieces[0])
            elif pieces:
                self.dst.write(b"".join(pieces))
        except ArchiveError as e:
            self.error = e
            raise OSError(str(e)) from None
        except (OSError, ValueError) as e:
            self.error = e
            raise
        return len(data)


class _ToFile:
    """Copies a compressor's stdout into the archive file while hashing it; keeps draining after a write
    error (disk full) so the compressor never blocks."""

    def __init__(self, fd: int, sha) -> None:
        self.fd = fd
        self.sha = sha
        self.bytes = 0
        self.error: OSError | None = None

    def write(self, data) -> None:
        if self.error is not None:
            return
        try:
            _write_all(self.fd, data)
        except OSError as e:
            self.error = e
            return
        self.sha.update(data)
        self.bytes += len(data)

    def pump(self, src: BinaryIO) -> threading.Thread:
        def run() -> None:
            try:
                while chunk := src.read(_CHUNK):
                    self.write(chunk)
            except (OSError, ValueError) as e:
                if self.error is None:
                    self.error = e if isinstance(e, OSError) else OSError(str(e))

        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t


def _start(argv: list[str], **kwargs) -> subprocess.Popen:
    """A local tool, in the C locale: its messages are parsed (disk full, file changed); without the Prefect
    settings (the API credential) in its environment (aegir.transport.childenv)."""
    try:
        return subprocess.Popen(argv, env=child_env({"LC_ALL": "C"}), **kwargs)
    except OSError as e:
        raise ArchiveError(f"cannot start {argv[0]}: {e.strerror}") from None


def _create_streamed(job: _Job, fd: int) -> tuple[str, int, dict, list[str]]:
    """The site's tar runs on its transport (local or SSH) and streams to the master; see the module doc."""
    compression, tool = job.compression, job.tool
    errors: list[str] = []

    # (2) the dump, compressed into a work file, in its own thread
    dfd = _create_exclusive(os.path.join(job.work, DUMP_MEMBER + EXTENSIONS[compression][4:]), readable=True)
    try:
        dproc = _start(COMPRESSORS[compression], stdin=subprocess.PIPE, stdout=dfd, stderr=subprocess.PIPE)
    except BaseException:
        os.close(dfd)
        raise
    dproc_err: list[bytes] = []
    dproc_err_t = _collect(dproc.stderr, dproc_err)
    writer = _HashWriter(dproc.stdin)
    dump_errors: list[BaseException] = []

    def close_dump_input() -> None:
        with contextlib.suppress(OSError, ValueError):
            dproc.stdin.close()

    # (1) the site part: remote/local tar → scan → compressor → hash → archive file
    try:
        sproc = _start(COMPRESSORS[compression], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except BaseException:
        close_dump_input()
        dproc.kill()
        dproc.wait()
        os.close(dfd)
        raise
    sha = hashlib.sha256()
    to_file = _ToFile(fd, sha)
    out_thread = to_file.pump(sproc.stdout)
    sproc_err: list[bytes] = []
    sproc_err_t = _collect(sproc.stderr, sproc_err)
    counts = {"files": 0, "bytes": 0}
    check = _MemberCheck()

    def on_site_member(m: TarMember) -> tuple[bool, None]:
        if m.type in (b"3", b"4", b"6"):
            raise _special(_TYPE_NAMES[m.type], m.name, job.site_path)
        check(m)  # never write an archive that extraction would refuse
        if m.type in _REGULAR:
            counts["files"] += 1
            counts["bytes"] += m.size
        return True, None

    scanner = _TarScanner(on_site_member)
    sink = _SiteSink(scanner, sproc.stdin)
    dump_thread = _run_dump(job, writer, dump_errors, after=close_dump_input)
    excludes = [f"--exclude={e}" for e in SITE_EXCLUDES]
    # C locale: tar's messages are parsed ("file changed as we read it" is only a warning)
    argv = ["env", "LC_ALL=C", "tar", "-c", "-f", "-", "-C", job.site_path, "--anchored", *excludes, "."]
    site_result = None
    transient = False
    try:
        site_result = job.site_transport.run(argv, stdout=sink, check=False)
    except TransportError as e:
        errors.append(f"reading the site directory {job.site_path} on {job.site_transport.host} failed: {e}")
        transient = e.transient
    finally:
        with contextlib.suppress(OSError, ValueError):
            sproc.stdin.close()
        sproc.wait()
        out_thread.join()
        sproc_err_t.join()
        dump_thread.join()
        dproc.wait()
        dproc_err_t.join()

    try:
        # verdicts, root causes first
        if to_file.error is not None:
            raise to_file.error  # disk full / I/O error on the archive file: create_archive words it
        texts = [_err_text(dproc_err), _err_text(sproc_err)]
        if any(_is_disk_full(t) for t in texts):
            raise ArchiveError(f"disk full writing the backup in {job.directory}: {next(t for t in texts if t)}")
        if dproc.returncode != 0:
            raise ArchiveError(f"{tool} failed compressing the database dump (exit {dproc.returncode}): {texts[0]}")
        _dump_failure(job, writer, dump_errors)
        if isinstance(sink.error, ArchiveError):
            raise sink.error
        warnings: list[str] = []
        if site_result is not None:
            stderr = site_result.stderr.decode(errors="replace").strip()
            warnings = _tar_verdict(job, site_result.exit_code, stderr.splitlines())
        if errors:
            raise ArchiveError("; ".join(errors), transient=transient)
        if sproc.returncode != 0:
            raise ArchiveError(f"{tool} failed compressing the site files (exit {sproc.returncode}): {texts[1]}")
        if sink.error is not None:
            raise ArchiveError(f"reading the site's tar stream failed: {sink.error}")
        if not (scanner.eof and scanner.between_members):
            raise ArchiveError(f"the tar stream of {job.site_path} ended before its end-of-archive marker")
        job.check_dump_size(writer.count)

        # (3) database.sql header, the compressed dump, then the tail with the manifest and the end marker
        dump_bytes = writer.count
        final = job.final_manifest(writer.sha.hexdigest(), dump_bytes, counts["files"], counts["bytes"])
        manifest_bytes = (json.dumps(final, indent=2, sort_keys=True) + "\n").encode()
        to_file.write(_compress_small(compression, _tar_header(DUMP_MEMBER, dump_bytes, job.started)))
        os.lseek(dfd, 0, os.SEEK_SET)
        while to_file.error is None and (chunk := os.read(dfd, _CHUNK)):
            to_file.write(chunk)
        tail = bytearray(_padded(dump_bytes) - dump_bytes)
        tail += _tar_header(MANIFEST_MEMBER, len(manifest_bytes), job.started)
        tail += manifest_bytes + bytes(_padded(len(manifest_bytes)) - len(manifest_bytes))
        tail += bytes(2 * _BLOCK)
        total = scanner.kept_bytes + _BLOCK + dump_bytes + len(tail)  # the uncompressed length of the whole tar
        tail += bytes(-total % _RECORD)
        to_file.write(_compress_small(compression, bytes(tail)))
        if to_file.error is not None:
            raise to_file.error
    finally:
        os.close(dfd)
    return sha.hexdigest(), to_file.bytes, final, warnings


# -- read: verify / extract ----------------------------------------------------------------------------------
def _detect(path: str) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise ArchiveError(f"{path}: no such backup archive") from None
    except OSError as e:
        raise ArchiveError(f"{path}: cannot read: {e.strerror}") from None
    if not head:
        raise ArchiveError(f"{path}: truncated (empty file)")
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    raise ArchiveError(f"{path}: not an Aegir backup (neither gzip nor zstd data)")


def _read_sidecar(path: str) -> dict | None:
    try:
        with open(sidecar_path(path), "rb") as f:
            data = json.loads(f.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise ArchiveError(f"{sidecar_path(path)}: unreadable sidecar: {e}") from None
    if not isinstance(data, dict):
        raise ArchiveError(f"{sidecar_path(path)}: unreadable sidecar (not a JSON object)")
    return data


class _Scan:
    """One pass over an archive file: the file is read once, hashed and fed to the decompressor; the tar
    stream is checked member by member; ``database.sql`` is hashed (and copied to ``dump_out``);
    ``manifest.json`` is captured. With ``keep``, ``chunks()`` yields the kept part of the tar stream
    (ending with an end-of-archive marker). Problems are recorded, never raised from ``chunks()``."""

    def __init__(
        self, path: str, *, keep: Callable[[str], bool] | None = None, dump_out: BinaryIO | None = None
    ) -> None:
        self.path = path
        self.compression = _detect(path)
        self.keep = keep
        self.dump_out = dump_out
        self.sha = hashlib.sha256()
        self.size = 0
        self.dump_sha = hashlib.sha256()
        self.dump_bytes = 0
        self.dump_seen = False
        self.manifest_raw: bytearray | None = None
        self.error: ArchiveError | None = None
        self.read_error: OSError | None = None
        self.returncode: int | None = None
        self.stderr = ""
        self.eof = False
        self.complete = False
        self._check = _MemberCheck()

    def _on_dump(self, piece: memoryview) -> None:
        self.dump_sha.update(piece)
        self.dump_bytes += len(piece)
        if self.dump_out is not None:
            try:
                self.dump_out.write(piece)
            except (OSError, ValueError) as e:
                raise ArchiveError(f"writing database.sql to its destination failed: {e}") from None

    def _on_manifest(self, piece: memoryview) -> None:
        assert self.manifest_raw is not None
        self.manifest_raw += piece

    def _on_member(self, m: TarMember) -> tuple[bool, Callable[[memoryview], None] | None]:
        name = self._check(m)
        keep = self.keep(name) if self.keep is not None else False
        if name == DUMP_MEMBER:
            if self.dump_seen:
                raise ArchiveError(f"{self.path}: not an Aegir backup (two database.sql members)")
            if m.type not in _REGULAR:
                raise ArchiveError(f"{self.path}: not an Aegir backup (database.sql is not a regular file)")
            self.dump_seen = True
            return keep, self._on_dump
        if name == MANIFEST_MEMBER:
            if self.manifest_raw is not None:
                raise ArchiveError(f"{self.path}: not an Aegir backup (two manifest.json members)")
            if m.type not in _REGULAR or m.size > _MANIFEST_MAX:
                raise ArchiveError(f"{self.path}: not an Aegir backup (manifest.json is not a small regular file)")
            self.manifest_raw = bytearray()
            return keep, self._on_manifest
        return keep, None

    def _feed(self, f, stdin) -> None:
        broken = False
        try:
            while chunk := f.read(_CHUNK):
                self.sha.update(chunk)
                self.size += len(chunk)
                if not broken:
                    try:
                        stdin.write(chunk)
                    except (OSError, ValueError):
                        broken = True  # the decompressor stopped: keep hashing for the checksum verdict
        except OSError as e:
            self.read_error = e
        finally:
            with contextlib.suppress(OSError, ValueError):
                stdin.close()

    def chunks(self) -> Iterator[bytes]:
        tool = DECOMPRESSORS[self.compression]
        try:
            f = open(self.path, "rb")  # noqa: SIM115 (closed in finally; the generator may pause)
        except OSError as e:
            raise ArchiveError(f"{self.path}: cannot read: {e.strerror}") from None
        try:
            proc = _start(tool, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except BaseException:
            f.close()
            raise
        feeder = threading.Thread(target=self._feed, args=(f, proc.stdin), daemon=True)
        feeder.start()
        err: list[bytes] = []
        err_t = _collect(proc.stderr, err)
        scanner = _TarScanner(self._on_member)
        finished = False
        try:
            while data := proc.stdout.read(_CHUNK):
                if self.error is not None:
                    continue
                try:
                    pieces = scanner.feed(data)
                except ArchiveError as e:
                    self.error = e
                    proc.kill()
                    continue
                if self.keep is not None and pieces:
                    yield pieces[0] if len(pieces) == 1 else b"".join(pieces)
            self.eof = scanner.eof
            self.complete = scanner.eof and scanner.between_members
            if self.keep is not None and self.error is None and self.complete:
                yield bytes(2 * _BLOCK)
            finished = True
        finally:
            if not finished and proc.poll() is None:
                proc.kill()
            with contextlib.suppress(OSError):
                proc.stdout.close()
            feeder.join()
            err_t.join()
            self.returncode = proc.wait()
            self.stderr = _err_text(err)
            f.close()

    def run(self) -> None:
        for _ in self.chunks():
            pass

    def verdict(self, expected: list[tuple[str, str]], expected_size: int | None) -> dict:
        """The manifest if the archive is sound; else ArchiveError naming the problem."""
        p = self.path
        if self.read_error is not None:
            raise ArchiveError(f"{p}: cannot read: {self.read_error.strerror or self.read_error}")
        actual = self.sha.hexdigest()
        decompressor = DECOMPRESSORS[self.compression][0]
        broken = self.returncode != 0 and self.error is None
        for source, value in expected:
            if value and actual != value.lower():
                extra = f"; {decompressor}: {self.stderr}" if broken and self.stderr else ""
                raise ArchiveError(
                    f"{p}: checksum mismatch (tampered or corrupted): sha256 is {actual}, {source} says {value}{extra}"
                )
        if expected_size is not None and self.size != expected_size:
            raise ArchiveError(
                f"{p}: size mismatch (tampered or corrupted): {self.size} bytes, expected {expected_size}"
            )
        if self.error is not None:
            msg = str(self.error)
            raise ArchiveError(msg if msg.startswith(p) else f"{p}: {msg}")
        if broken:
            raise ArchiveError(f"{p}: truncated or corrupt ({decompressor}: {self.stderr or 'failed'})")
        if not self.complete:
            raise ArchiveError(f"{p}: truncated (the tar stream ends without its end-of-archive marker)")
        if self.manifest_raw is None:
            raise ArchiveError(f"{p}: not an Aegir backup (no manifest.json)")
        try:
            manifest = json.loads(bytes(self.manifest_raw))
        except ValueError:
            raise ArchiveError(f"{p}: not an Aegir backup (manifest.json is not valid JSON)") from None
        if not isinstance(manifest, dict) or "format_version" not in manifest:
            raise ArchiveError(f"{p}: not an Aegir backup (manifest.json has no format_version)")
        if manifest["format_version"] != FORMAT_VERSION:
            raise ArchiveError(
                f"{p}: backup format_version {manifest['format_version']!r} is not supported "
                f"(this version reads {FORMAT_VERSION})"
            )
        if not self.dump_seen:
            raise ArchiveError(f"{p}: missing database.sql")
        if self.dump_sha.hexdigest() != manifest.get("dump_sha256") or self.dump_bytes != manifest.get("dump_bytes"):
            raise ArchiveError(
                f"{p}: checksum mismatch (tampered or corrupted): database.sql has sha256 "
                f"{self.dump_sha.hexdigest()} ({self.dump_bytes} bytes), the manifest says "
                f"{manifest.get('dump_sha256')} ({manifest.get('dump_bytes')} bytes)"
            )
        return manifest


def _verify(path: str, expected_sha256: str | None) -> tuple[dict, str]:
    path = os.path.abspath(path)
    sidecar = _read_sidecar(path)
    expected: list[tuple[str, str]] = []
    if expected_sha256:
        expected.append(("the backup record", expected_sha256))
    expected_size = None
    if sidecar is not None:
        if sidecar.get("archive_sha256"):
            expected.append(("the sidecar", str(sidecar["archive_sha256"])))
        if isinstance(sidecar.get("archive_bytes"), int):
            expected_size = sidecar["archive_bytes"]
            try:
                actual_size = os.path.getsize(path)
            except OSError as e:
                raise ArchiveError(f"{path}: cannot read: {e.strerror}") from None
            if actual_size < expected_size:
                raise ArchiveError(f"{path}: truncated ({actual_size} of {expected_size} bytes)")
    scan = _Scan(path)
    scan.run()
    manifest = scan.verdict(expected, expected_size)
    return manifest, scan.sha.hexdigest()


def verify_archive(path: str, *, expected_sha256: str | None = None) -> dict:
    """Check ``path`` completely (reading it once) and return its manifest; ``ArchiveError`` says what is
    wrong: not an Aegir backup, truncated, checksum mismatch (tampered or corrupted), missing database.sql,
    unsafe member. The checksum is compared with ``expected_sha256`` and with the sidecar's, when present."""
    return _verify(path, expected_sha256)[0]


class _PullStream:
    """A readable stream over an iterator of chunks (the transport's stdin pump pulls from it)."""

    def __init__(self, it: Iterator[bytes]) -> None:
        self._it = it
        self._view = memoryview(b"")
        self._done = False
        self.error: BaseException | None = None

    def read(self, n: int = -1) -> bytes:
        while not self._view and not self._done:
            try:
                self._view = memoryview(next(self._it))
            except StopIteration:
                self._done = True
            except BaseException as e:  # recorded; the caller raises it after the command
                self.error = e
                self._done = True
        if n is None or n < 0 or n >= len(self._view):
            chunk, self._view = self._view, memoryview(b"")
        else:
            chunk, self._view = self._view[:n], self._view[n:]
        return bytes(chunk)


def _clear(transport: Transport, site_path: str, existed: bool) -> None:
    with contextlib.suppress(TransportError):
        if existed:
            for entry in transport.listdir(site_path):
                transport.remove_tree(posixpath.join(site_path, entry))
        else:
            transport.remove_tree(site_path)


def extract_archive(
    path: str,
    *,
    site_transport: Transport,
    site_path: str,
    dump_out: BinaryIO,
    expected_sha256: str | None = None,
) -> dict:
    """Verify ``path``, then extract its site files into ``site_path`` (absent or empty; created 0755) on
    ``site_transport`` and stream ``database.sql`` into ``dump_out``. Returns the manifest. On failure the
    files extracted so far are removed again (``dump_out`` may have received part of the dump)."""
    if not posixpath.isabs(site_path) or "\0" in site_path or posixpath.normpath(site_path) == "/":
        raise InputError("site_path", f"must be an absolute path below /; got {site_path!r}")
    path = os.path.abspath(path)
    manifest, digest = _verify(path, expected_sha256)
    try:
        existed = site_transport.exists(site_path)
        if existed:
            if not site_transport.is_dir(site_path):
                raise ArchiveError(f"{site_path} on {site_transport.host} exists and is not a directory")
            if site_transport.listdir(site_path):
                raise ArchiveError(f"{site_path} on {site_transport.host} is not empty: refusing to extract into it")
        else:
            site_transport.makedirs(site_path, mode=0o755)
    except TransportError as e:
        raise ArchiveError(f"cannot prepare {site_path} on {site_transport.host}: {e}") from None

    scan = _Scan(path, keep=lambda name: name not in (".", DUMP_MEMBER, MANIFEST_MEMBER), dump_out=dump_out)
    chunks = scan.chunks()
    stream = _PullStream(chunks)
    argv = ["env", "LC_ALL=C", "tar", "-x", "-p", "--no-same-owner", "-f", "-", "-C", site_path]
    failure: str | None = None
    try:
        try:
            site_transport.run(argv, stdin=stream)
        except TransportError as e:
            failure = f"extracting into {site_path} on {site_transport.host} failed: {e}"
        if failure is None:
            # tar may stop reading at its end marker: drain what is left (database.sql, the manifest)
            leftover = stream.read()
            for extra in (leftover, *chunks):
                if extra.strip(b"\0"):
                    failure = f"tar on {site_transport.host} stopped reading before the end of the archive"
    finally:
        chunks.close()
    problem: str | None = None
    if stream.error is not None:
        problem = f"{path}: {stream.error}"
    elif scan.error is not None:
        problem = str(scan.error)
    elif failure is not None:
        problem = failure
    else:
        try:
            again = scan.verdict([("the verification pass", digest)], None)
        except ArchiveError as e:
            problem = str(e)
        else:
            if again != manifest:
                problem = f"{path}: changed while it was being extracted"
    if problem is not None:
        _clear(site_transport, site_path, existed)
        raise ArchiveError(problem)
    return manifest


def delete_archive(path: str) -> None:
    """Remove a backup archive and its sidecar (either may already be missing)."""
    path = os.path.abspath(path)
    if not path.endswith(tuple(EXTENSIONS.values())):
        raise ArchiveError(f"{path}: not a backup archive name (*.tar.gz or *.tar.zst)")
    try:
        _unlink(sidecar_path(path))
        _unlink(path)
    except OSError as e:
        raise ArchiveError(f"cannot delete {path}: {e.strerror}") from None
    with contextlib.suppress(OSError):
        _fsync_dir(os.path.dirname(path))
