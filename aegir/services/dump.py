"""Database dumps and imports with the MySQL/MariaDB command-line clients, run on the master over TCP.

Credentials reach the client only as an option file on an inherited pipe (``--defaults-file=/dev/fd/N``):
never in argv, the environment or a file on disk. ``--defaults-file`` (not ``--defaults-extra-file``) is
used on purpose: the client reads ``~/.my.cnf`` *after* an extra file, so a ``[client] user/password`` in
the home directory of whoever runs the task would silently override the server's admin credentials (checked
with ``mysqldump --print-defaults`` on MariaDB 10.11). It must be the first option on the command line.

A dump is a success only when mysqldump exits 0, every byte reached the writer and the dump ends with
mysqldump's ``-- Dump completed`` trailer; anything else raises ``DumpError`` (never a partial success).
DEFINER clauses are stripped while streaming (as Aegir does), so views, triggers and routines keep working
after an import under another user (restore/migrate/clone create a new site user).
"""

from __future__ import annotations

import re
from typing import BinaryIO

from aegir.contexts import ServerContext
from aegir.services.db import DbError, quote_ident
from aegir.transport.base import SecretFile, Transport, TransportError, redact

MIN_DUMP_BYTES = 1024

DUMP_OPTIONS = (
    "--single-transaction",  # consistent InnoDB snapshot without locking the site
    "--quick",  # row by row, never the whole table in memory
    # no --no-autocommit: one transaction per table overflows a default-sized redo log on big tables, and
    # measured slower than a commit per (1 MB, extended) INSERT here (bench/migrate.py, docs/benchmarks.md)
    "--skip-lock-tables",  # --single-transaction already gives consistency; LOCK TABLES needs the privilege
    "--routines",
    "--triggers",
    "--hex-blob",  # binary columns survive any charset handling
    "--default-character-set=utf8mb4",
    "--max-allowed-packet=1G",  # rows bigger than the 24 MB default must not abort the dump
)
IMPORT_OPTIONS = ("--default-character-set=utf8mb4", "--max-allowed-packet=1G")
_TRAILER = b"-- Dump completed"
# client errors meaning "could not reach the server" (2002/2003 cannot connect, 2006/2013 connection lost)
_UNREACHABLE = re.compile(r"\b(2002|2003|2006|2013)\b|Can't connect to|Lost connection to")


class DumpError(DbError):
    """A dump or import failed; the message carries the client's stderr, with the password redacted."""


def _escape(value: str) -> str:
    """A value for a MySQL option file: double-quoted, with the escapes the client's parser understands."""
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + out.replace("\t", "\\t") + '"'


def _password(server: ServerContext) -> str:
    return server.db_password.get_secret_value() if server.db_password else ""


def client_options(server: ServerContext) -> SecretFile:
    """The admin credentials of ``server``'s db service as a ``[client]`` option file on a pipe."""
    if server.db_service_type != "mysql" or not server.db_user:
        raise DumpError(f"{server.name} has no mysql db service with an admin user")
    password = _password(server)
    content = (
        "[client]\n"
        f"user={_escape(server.db_user)}\n"
        f"password={_escape(password)}\n"
        f"host={server.db_address}\n"
        f"port={server.db_port}\n"
        "protocol=tcp\n"
    )
    return SecretFile(content, prefix="--defaults-file=", redact=(password,) if password else ())


def _check_name(db_name: str) -> None:
    try:
        quote_ident(db_name)
    except DbError:
        raise DumpError(f"refusing unsafe database name {db_name!r}") from None


def _failure(what: str, server: ServerContext, e: TransportError) -> DumpError:
    detail = f" (exit code {e.exit_code})" if e.exit_code is not None else ""
    stderr = redact(e.stderr or "", [_password(server)]).strip()
    if not stderr:
        stderr = redact(e.message, [_password(server)])
    err = DumpError(f"{what} on {server.db_address}:{server.db_port} failed{detail}: {stderr[:4000]}")
    err.transient = e.transient or bool(_UNREACHABLE.search(stderr))
    return err


# -- DEFINER stripping ------------------------------------------------------------------------------------
_VIEW_DEFINER_LINE = re.compile(rb"^/\*!50013 DEFINER=.*\*/\s*$")
_VERSIONED_DEFINER = re.compile(rb"/\*!50\d\d\d DEFINER=`(?:[^`]|``)*`(?:@`(?:[^`]|``)*`)?\s*\*/ ?")
_CREATE_DEFINER = re.compile(rb"\bCREATE DEFINER=`(?:[^`]|``)*`(?:@`(?:[^`]|``)*`)? ")
_MAX_CARRY = 1 << 20


def strip_definer(line: bytes) -> bytes:
    """One dump line without DEFINER clauses (the importing user becomes the definer)."""
    if b"DEFINER=" not in line:
        return line
    if _VIEW_DEFINER_LINE.match(line.rstrip(b"\n")):
        return b""
    line = _VERSIONED_DEFINER.sub(b"", line)
    return _CREATE_DEFINER.sub(b"CREATE ", line)


class _DefinerFilter:
    """Streams a dump, rewriting the DDL lines that carry a DEFINER. Chunks without ``DEFINER=`` (nearly all:
    the row data) pass through whole; only the last, incomplete line of a chunk is held back (a long data
    row, which never holds DDL, is passed through without being buffered)."""

    def __init__(self, write) -> None:
        self._write = write
        self._line = bytearray()  # the incomplete last line of the previous chunk
        self._passthrough = False  # inside a long data row: pass bytes through up to its newline

    def feed(self, data: bytes) -> None:
        if self._passthrough:
            nl = data.find(b"\n")
            if nl < 0:
                self._write(data)
                return
            self._write(data[: nl + 1])
            data = data[nl + 1 :]
            self._passthrough = False
        nl = data.rfind(b"\n")
        if nl < 0:
            self._line += data
            if len(self._line) > _MAX_CARRY and self._line[:1] in (b"(", b"I"):  # a row, not DDL
                self._write(bytes(self._line))
                self._line.clear()
                self._passthrough = True
            return
        if self._line:
            head = bytes(self._line) + data[: nl + 1]
            found = b"DEFINER=" in head
        else:  # the common case: no copy, just a search
            head = memoryview(data)[: nl + 1]
            found = data.find(b"DEFINER=", 0, nl + 1) >= 0
        self._line = bytearray(data[nl + 1 :])
        if found:
            head = b"".join(
                line if line[:1] in (b"(", b"I") else strip_definer(line)
                for line in bytes(head).splitlines(keepends=True)
            )
        self._write(head)

    def close(self) -> None:
        if self._line:
            line = bytes(self._line)
            self._write(line if self._passthrough or line[:1] in (b"(", b"I") else strip_definer(line))
            self._line.clear()


class _Sink:
    """Counts what reaches ``out`` and remembers the tail; a failing ``out`` is recorded, not swallowed
    (the transport keeps draining mysqldump so it can exit, but the dump is then a failure)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.count = 0
        self.tail = b""
        self.error: BaseException | None = None

    def write(self, data: bytes) -> None:
        if self.error is not None:
            raise OSError("the dump's destination failed")
        if not data:
            return
        try:
            self.out.write(data)
        except BaseException as e:
            self.error = e
            raise OSError(f"writing the dump failed: {e}") from None
        self.count += len(data)
        self.tail = (self.tail + bytes(memoryview(data)[-256:]))[-256:]


class _Feed:
    """The writer handed to the transport: filter (optional) → sink."""

    def __init__(self, sink: _Sink, strip_definers: bool) -> None:
        self.sink = sink
        self.filter = _DefinerFilter(sink.write) if strip_definers else None

    def write(self, data: bytes) -> int:
        if self.filter is not None:
            self.filter.feed(data if isinstance(data, bytes) else bytes(data))
        else:
            self.sink.write(data)
        return len(data)

    def close(self) -> None:
        if self.filter is not None:
            self.filter.close()


def dump_database(
    transport: Transport,
    server: ServerContext,
    db_name: str,
    out: BinaryIO,
    *,
    timeout: float | None = None,
    strip_definers: bool = True,
) -> int:
    """Dump ``db_name`` from ``server``'s db service (run on ``transport``, normally the master) into ``out``.

    Returns the bytes written. Any failure raises ``DumpError``: a non-zero exit, a write error on ``out``,
    or a dump without mysqldump's completion trailer.
    """
    _check_name(db_name)
    argv = ["mysqldump", client_options(server), *DUMP_OPTIONS, "--", db_name]
    sink = _Sink(out)
    feed = _Feed(sink, strip_definers)
    what = f"mysqldump of database {db_name!r}"
    try:
        transport.run(argv, stdout=feed, timeout=timeout)
        if sink.error is None:
            feed.close()
    except TransportError as e:
        raise _failure(what, server, e) from None
    except OSError as e:
        raise DumpError(f"{what} failed: {e}") from None
    if sink.error is not None:
        raise DumpError(f"{what} failed: cannot write the dump: {sink.error}")
    if _TRAILER not in sink.tail:
        raise DumpError(f"{what} is incomplete: mysqldump ended without its '-- Dump completed' trailer")
    return sink.count


def import_database(
    transport: Transport,
    server: ServerContext,
    db_name: str,
    source: BinaryIO,
    *,
    timeout: float | None = None,
) -> None:
    """Load a dump streamed from ``source`` into the existing database ``db_name`` on ``server``."""
    _check_name(db_name)
    argv = ["mysql", client_options(server), *IMPORT_OPTIONS, "--", db_name]
    try:
        transport.run(argv, stdin=source, timeout=timeout)
    except TransportError as e:
        raise _failure(f"import into database {db_name!r}", server, e) from None
