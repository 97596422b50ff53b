"""LocalTransport: the master itself (``@server_master``)."""

from __future__ import annotations

import contextlib
import grp
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from typing import BinaryIO

from . import trees
from .base import Arg, CommandResult, SecretFile, TransportError, display_argv, redact
from .childenv import child_env

_CHUNK = 1 << 20
_STDERR_CAP = 1 << 20


def _gid(group: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise TransportError(f"group {group!r} does not exist on this machine") from None


def _pump(src: BinaryIO, dst, close_dst: bool, drain: bool = False) -> None:
    """Copy src to dst. With ``drain`` (a child's output) a failing dst does not stop the reading: a child
    blocked on a full pipe would never exit."""
    broken = False
    try:
        while chunk := src.read(_CHUNK):
            if broken:
                continue
            try:
                dst.write(chunk)
            except (OSError, ValueError):
                if not drain:
                    return
                broken = True
    except (BrokenPipeError, ValueError):
        pass
    finally:
        if close_dst:
            with contextlib.suppress(BrokenPipeError):
                dst.close()


class _Capture:
    def __init__(self, cap: int | None = None) -> None:
        self.buf = bytearray()
        self.cap = cap

    def write(self, data: bytes) -> None:
        if self.cap is None or len(self.buf) < self.cap:
            self.buf.extend(data)


class LocalTransport:
    """Runs commands and file operations on this machine."""

    def __init__(self, host: str = "localhost") -> None:
        self.host = host

    # -- commands ---------------------------------------------------------------------------------------
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
        shown = display_argv(argv)
        secrets = [s for a in argv if isinstance(a, SecretFile) for s in a.redact]
        fds: list[int] = []
        real: list[str] = []
        try:
            for a in argv:
                if isinstance(a, SecretFile):
                    data = a.content.encode()
                    if len(data) >= 65536:
                        raise ValueError("a secret file must be smaller than 64 KiB")
                    r, w = os.pipe()
                    os.write(w, data)
                    os.close(w)
                    fds.append(r)
                    real.append(a.render(f"/dev/fd/{r}"))
                else:
                    real.append(a)
            try:
                proc = subprocess.Popen(
                    real,
                    stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    pass_fds=fds,
                    cwd=cwd,
                    env=child_env(),
                )
            except OSError as e:
                raise TransportError(f"cannot start command: {e.strerror}", command=shown, host=self.host) from None
        finally:
            for fd in fds:
                os.close(fd)
        out = _Capture()
        err = _Capture(_STDERR_CAP)
        threads = [
            threading.Thread(target=_pump, args=(proc.stdout, stdout if stdout is not None else out, False, True)),
            threading.Thread(target=_pump, args=(proc.stderr, err, False, True)),
        ]
        if stdin is not None:
            src = stdin if not isinstance(stdin, bytes | bytearray) else _BytesReader(bytes(stdin))
            threads.append(threading.Thread(target=_pump, args=(src, proc.stdin, True)))
        for t in threads:
            t.daemon = True
            t.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            for t in threads:
                t.join()
            raise TransportError(f"command timed out after {timeout} s", command=shown, host=self.host) from None
        for t in threads:
            t.join()
        result = CommandResult(shown, code, bytes(out.buf), bytes(err.buf))
        if check and code != 0:
            raise TransportError(
                "command failed",
                command=shown,
                exit_code=code,
                stderr=redact(result.stderr.decode(errors="replace"), secrets),
                host=self.host,
            )
        return result

    # -- files ------------------------------------------------------------------------------------------
    def read_file(self, path: str) -> bytes:
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise TransportError(f"cannot read {path}: {e.strerror}", host=self.host) from None

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644, group: str | None = None) -> None:
        if isinstance(data, str):
            data = data.encode()
        directory, base = os.path.split(path)
        try:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{base}.tmp-")
        except OSError as e:
            raise TransportError(f"cannot write {path}: {e.strerror}", host=self.host) from None
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if group is not None:
                    os.fchown(f.fileno(), -1, _gid(group))
                os.fchmod(f.fileno(), mode)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            raise
        self._fsync_dir(directory)

    @staticmethod
    def _fsync_dir(directory: str) -> None:
        dfd = os.open(directory or ".", os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(path)

    def makedirs(self, path: str, mode: int = 0o755, group: str | None = None) -> None:
        try:
            os.makedirs(path, exist_ok=True)
            if group is not None:  # chgrp first: it may clear the setgid bit
                os.chown(path, -1, _gid(group))
            os.chmod(path, mode)
        except OSError as e:
            raise TransportError(f"cannot create directory {path}: {e.strerror}", host=self.host) from None

    def remove_file(self, path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise TransportError(f"cannot remove {path}: {e.strerror}", host=self.host) from None

    def remove_tree(self, path: str) -> None:
        try:
            if os.path.islink(path) or os.path.isfile(path):
                os.unlink(path)
            elif os.path.isdir(path):
                shutil.rmtree(path)
        except OSError as e:
            raise TransportError(f"cannot remove {path}: {e.strerror}", host=self.host) from None

    def symlink(self, target: str, link: str) -> None:
        tmp = f"{link}.tmp-{os.getpid()}"
        try:
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(target, tmp)
            os.replace(tmp, link)
        except OSError as e:
            raise TransportError(f"cannot link {link} -> {target}: {e.strerror}", host=self.host) from None

    def listdir(self, path: str) -> list[str]:
        try:
            return sorted(os.listdir(path))
        except OSError as e:
            raise TransportError(f"cannot list {path}: {e.strerror}", host=self.host) from None

    def push_tree(self, local: str, remote: str, excludes: Sequence[str] = ()) -> None:
        trees.push_tree(self, local, remote, excludes)

    def fetch_tree(self, remote: str, local: str) -> None:
        trees.fetch_tree(self, remote, local)

    def close(self) -> None:
        pass


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else self._pos + n
        chunk = bytes(self._data[self._pos : end])
        self._pos += len(chunk)
        return chunk
