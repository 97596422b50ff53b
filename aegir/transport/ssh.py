"""SSHTransport: a remote server reached over SSH (paramiko), same contract as ``LocalTransport``.

Commands run through a fixed ``bash -c`` wrapper whose script holds no user data: argv travels as positional
parameters (``"$@"``), so no item is ever interpreted by a shell. Secrets (``SecretFile``) are sent first on
the channel's stdin, read by the wrapper with an exact byte count and handed to the command as inherited pipes
on fds 3, 4, ... (``/dev/fd/N``): never in argv, the environment or a file. Files are handled over SFTP.

Host keys are checked strictly: either the ``host_key`` given (known_hosts-style line) or the known_hosts
file; an unknown or changed key is refused (``HostKeyError``), never silently accepted.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import io
import os
import posixpath
import re
import secrets as _secrets
import shlex
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import BinaryIO

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from paramiko.sftp import CMD_EXTENDED, CMD_HANDLE, CMD_OPEN, SFTP_FLAG_CREATE, SFTP_FLAG_EXCL, SFTP_FLAG_WRITE
from paramiko.ssh_exception import IncompatiblePeer, NoValidConnectionsError

from . import trees
from .base import (
    Arg,
    AuthenticationError,
    CommandResult,
    HostKeyError,
    SecretFile,
    TransportConnectionError,
    TransportError,
    display_argv,
    redact,
)

# A host that vanishes mid-command (power cut, link down) must fail the command, not hang it until the kernel
# gives up (~15 min): an SSH keepalive every KEEPALIVE s keeps data in flight, and the kernel drops the
# connection when data stays unacknowledged for DEAD_PEER_MS (TCP_USER_TIMEOUT; plus TCP keepalive probes).
KEEPALIVE = 5
DEAD_PEER_MS = 20_000


def _detect_dead_peer(transport: paramiko.Transport) -> None:
    transport.set_keepalive(KEEPALIVE)
    sock = transport.sock
    if not isinstance(sock, socket.socket):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", KEEPALIVE), ("TCP_KEEPINTVL", KEEPALIVE), ("TCP_KEEPCNT", 3),
                        ("TCP_USER_TIMEOUT", DEAD_PEER_MS)):  # fmt: skip
        if hasattr(socket, name):  # Linux
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


_CHUNK = 1 << 16
_STDERR_CAP = 1 << 20
_SECRET_MAX = 65536
_EXEC_FAILED = b"aegir-transport: cannot start command"

# The remote wrapper. Fixed text: user data only ever arrives as positional parameters ($1 = number of
# secrets, $2 = working directory or "", then argv) or on stdin (per secret: "<byte length>\n<bytes>").
# printf is a builtin, so a secret never shows up in any process's argv; dd reads exactly <length> bytes
# (bs=1), leaving the rest of stdin to the command. "x" guards trailing newlines in the substitution.
_WRAPPER = r"""printf 'aegir-transport-pid:%d\n' "$$" >&2
fail() { printf '\n%s\n' 'aegir-transport: cannot start command' >&2; exit 127; }
n=$1 d=$2
shift 2
if [ -n "$d" ]; then cd -- "$d" || fail; fi
i=0
while [ "$i" -lt "$n" ]; do
  IFS= read -r len || fail
  s=$(dd bs=1 count="$len" status=none && printf x) || fail
  s=${s%x}
  eval "exec $((i + 3))< <(printf '%s' \"\$s\")"
  i=$((i + 1))
done
unset s len i n d
shopt -s execfail
exec -- "$@"
fail
"""


def _fingerprint(key: paramiko.PKey) -> str:
    digest = hashlib.sha256(key.asbytes()).digest()
    return f"{key.get_name()} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


def _why(e: BaseException) -> str:
    if isinstance(e, NoValidConnectionsError):
        reasons = {(x.strerror or str(x)) for x in e.errors.values()}
        return ", ".join(sorted(reasons)) or "connection failed"
    if isinstance(e, TimeoutError | socket.timeout):
        return "connection timed out"
    if isinstance(e, socket.gaierror):
        return f"cannot resolve host name ({e.strerror})"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__


class _UnknownHostKey(paramiko.SSHException):
    def __init__(self, key: paramiko.PKey) -> None:
        super().__init__("unknown host key")
        self.key = key


class _RejectUnknownHostKey(paramiko.RejectPolicy):
    """RejectPolicy that keeps the offered key for the error message."""

    def missing_host_key(self, client, hostname, key):
        raise _UnknownHostKey(key)


def _parse_host_key(line: str, where: str, host: str) -> paramiko.PKey:
    """Parse "ssh-ed25519 AAAA... [comment]" (a leading known_hosts host field is tolerated)."""
    fields = line.split()
    for i in range(len(fields) - 1):
        keytype, data = fields[i], fields[i + 1]
        if not (keytype.startswith(("ssh-", "ecdsa-", "sk-")) and data.startswith("AAAA")):
            continue
        try:
            blob = base64.b64decode(data, validate=True)
            key = paramiko.PKey.from_type_string(keytype, blob)
        except (binascii.Error, ValueError, paramiko.SSHException, paramiko.UnknownKeyType, TypeError):
            break
        if key.get_name() != keytype and not (keytype == "ssh-rsa" and isinstance(key, paramiko.RSAKey)):
            break
        return key
    raise HostKeyError(
        f"invalid SSH host key given for {where}: expected a known_hosts-style line such as "
        f"'ssh-ed25519 AAAA...' (see ssh-keyscan)",
        host=host,
    )


def _read_known_hosts(path: str, host: str) -> list[tuple[str, paramiko.PKey]]:
    """Entries of an OpenSSH known_hosts file. Like ssh, lines that cannot be parsed are skipped (paramiko's
    own loader gives up on the whole file); @cert-authority / @revoked lines are not supported."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise HostKeyError(f"cannot read known_hosts file {path}: {_why(e)}", host=host) from None
    entries = []
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith(("#", "@")):
            continue
        try:
            entry = paramiko.hostkeys.HostKeyEntry.from_line(line, lineno)
        except Exception:
            continue
        if entry is not None and entry.key is not None:
            entries.extend((name, entry.key) for name in entry.hostnames)
    return entries


def _load_private_key(text: str) -> paramiko.PKey:
    """Load an OpenSSH or PEM private key (ed25519, ecdsa, rsa). Errors never carry key material."""
    data = text.encode()
    try:
        loaded = serialization.load_ssh_private_key(data, password=None)
    except ValueError:
        loaded = serialization.load_pem_private_key(data, password=None)
    if isinstance(loaded, rsa.RSAPrivateKey):
        cls = paramiko.RSAKey
    elif isinstance(loaded, ed25519.Ed25519PrivateKey):
        cls = paramiko.Ed25519Key
    elif isinstance(loaded, ec.EllipticCurvePrivateKey):
        cls = paramiko.ECDSAKey
    else:
        raise ValueError("unsupported key type")
    return cls.from_private_key(io.StringIO(text))


class SSHTransport:
    """Runs commands and file operations on a remote machine over one (lazily opened) SSH connection."""

    def __init__(
        self,
        host: str,
        *,
        port: int = 22,
        user: str = "aegir",
        private_key: str | None = None,
        host_key: str | None = None,
        known_hosts: str | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.connect_timeout = connect_timeout
        self._where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self._known_name = host if port == 22 else f"[{host}]:{port}"
        self._host_key = _parse_host_key(host_key, self._where, host) if host_key else None
        if known_hosts is None:
            default = os.path.expanduser("~/.ssh/known_hosts")
            known_hosts = default if os.path.exists(default) else None
        self._known_hosts = known_hosts
        self._pkey: paramiko.PKey | None = None
        if private_key is not None:
            failure = None
            try:
                self._pkey = _load_private_key(private_key)
            except (TypeError, paramiko.PasswordRequiredException):
                failure = "it is encrypted (a passphrase-protected key is not supported)"
            except Exception:  # never chain or echo: the exception may quote the key
                failure = "it is not a valid OpenSSH or PEM ed25519, ecdsa or rsa private key"
            if failure:  # raised outside the except block: no __context__ holding key data
                raise AuthenticationError(f"cannot use the SSH private key for {self._login}: {failure}", host=host)
        self._lock = threading.RLock()
        self._client: paramiko.SSHClient | None = None
        self._sftp: paramiko.SFTPClient | None = None
        self._gids: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"SSHTransport({self._login!r})"

    @property
    def _login(self) -> str:
        return f"{self.user}@{self._where}"

    # -- connection -------------------------------------------------------------------------------------
    def _connect(self) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(_RejectUnknownHostKey())
        if self._host_key is not None:
            client.get_host_keys().add(self._known_name, self._host_key.get_name(), self._host_key)
        elif self._known_hosts is not None:
            known = client.get_host_keys()  # read-only use: RejectPolicy never writes the file back
            for name, key in _read_known_hosts(self._known_hosts, self.host):
                known.add(name, key.get_name(), key)
        error: TransportError | None = None
        try:
            client.connect(
                self.host,
                port=self.port,
                username=self.user,
                pkey=self._pkey,
                allow_agent=self._pkey is None,
                look_for_keys=self._pkey is None,
                timeout=self.connect_timeout,
                banner_timeout=self.connect_timeout,
                auth_timeout=self.connect_timeout,
            )
        except _UnknownHostKey as e:
            source = f"the known_hosts file {self._known_hosts}" if self._known_hosts else "no known_hosts file"
            error = HostKeyError(
                f"the SSH host key of {self._where} is not known (server offered {_fingerprint(e.key)}; "
                f"consulted {source}); refusing to connect. Verify the fingerprint, then add it: "
                f"`ssh-keyscan -p {self.port} {self.host} >> ~/.ssh/known_hosts`, or set "
                f"--ssh_host_key='<type> <base64 key>' on the server context",
                host=self.host,
            )
        except paramiko.BadHostKeyException as e:
            error = HostKeyError(
                f"the SSH host key of {self._where} has CHANGED: expected {_fingerprint(e.expected_key)}, "
                f"the server offered {_fingerprint(e.key)}; refusing to connect (a man-in-the-middle attack, "
                f"or the server was reinstalled). If the change is expected, update the known host key "
                f"(ssh-keygen -R, or --ssh_host_key=... on the server context)",
                host=self.host,
            )
        except paramiko.AuthenticationException as e:
            what = "the configured private key" if self._pkey is not None else "the ssh agent / default keys"
            error = AuthenticationError(
                f"authentication as {self._login} failed with {what}: {type(e).__name__}: {e}", host=self.host
            )
        except IncompatiblePeer as e:
            error = TransportError(f"cannot talk to {self._where}: incompatible SSH server: {e}", host=self.host)
        except paramiko.SSHException as e:
            if "authentication" in str(e).lower():  # "No authentication methods available": no key at all
                error = AuthenticationError(f"authentication as {self._login} failed: {e}", host=self.host)
            else:  # banner / handshake trouble: an overloaded or restarting server
                error = TransportConnectionError(f"cannot reach {self._where}: {_why(e)}", host=self.host)
        except (OSError, EOFError) as e:
            error = TransportConnectionError(f"cannot reach {self._where}: {_why(e)}", host=self.host)
        if error is not None:
            client.close()
            raise error
        transport = client.get_transport()
        if transport is not None:
            _detect_dead_peer(transport)
        return client

    def _transport(self) -> paramiko.Transport:
        with self._lock:
            t = self._client.get_transport() if self._client is not None else None
            if t is None or not t.is_active():
                self._drop()
                self._client = self._connect()
                t = self._client.get_transport()
            assert t is not None
            return t

    def _drop(self) -> None:
        with self._lock:
            sftp, client = self._sftp, self._client
            self._sftp = self._client = None
            for thing in (sftp, client):
                if thing is not None:
                    with suppress(Exception):
                        thing.close()

    def _dropped(self, doing: str, e: BaseException | None = None) -> TransportConnectionError:
        self._drop()
        detail = f": {_why(e)}" if e is not None else ""
        return TransportConnectionError(
            f"cannot reach {self._where}: connection dropped while {doing}{detail}", host=self.host
        )

    def close(self) -> None:
        self._drop()

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
        if not argv:
            raise ValueError("empty argv")
        shown = display_argv(argv)
        redacted = [s for a in argv if isinstance(a, SecretFile) for s in a.redact]
        preamble = bytearray()
        real: list[str] = []
        nsecrets = 0
        for a in argv:
            if isinstance(a, SecretFile):
                data = a.content.encode()
                if len(data) >= _SECRET_MAX:
                    raise ValueError("a secret file must be smaller than 64 KiB")
                preamble += b"%d\n" % len(data) + data
                real.append(a.render(f"/dev/fd/{3 + nsecrets}"))
                nsecrets += 1
            else:
                real.append(a)
        wrapper = ["exec", "bash", "--norc", "--noprofile", "-c", _WRAPPER, "aegir-run"]
        command = shlex.join([*wrapper, str(nsecrets), cwd or "", *real])

        transport = self._transport()
        try:
            chan = transport.open_session(timeout=self.connect_timeout)
            chan.exec_command(command)
        except (OSError, EOFError, paramiko.SSHException) as e:
            # a dead connection paramiko has not noticed yet times out here: reconnect on the next call
            raise self._dropped("starting a command", e) from None

        out = bytearray()
        err = _Stderr()
        feed_errors: list[BaseException] = []
        sink = stdout.write if stdout is not None else out.extend
        threads = [
            threading.Thread(target=_drain, args=(chan.recv, sink), daemon=True),
            threading.Thread(target=_drain, args=(chan.recv_stderr, err.write), daemon=True),
        ]
        if preamble or stdin is not None:
            src = None if stdin is None else (io.BytesIO(stdin) if isinstance(stdin, bytes | bytearray) else stdin)
            threads.append(threading.Thread(target=_feed, args=(chan, bytes(preamble), src, feed_errors), daemon=True))
        else:
            chan.shutdown_write()
        for t in threads:
            t.start()

        deadline = None if timeout is None else time.monotonic() + timeout
        finished = True
        for t in threads[:2]:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            finished = finished and not t.is_alive()
        if finished:
            finished = chan.status_event.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if not finished:
            self._kill(err.pid(), transport)
            chan.close()
            for t in threads:
                t.join(5)
            raise TransportError(f"command timed out after {timeout} s", command=shown, host=self.host)
        code = chan.recv_exit_status()
        for t in threads[2:]:
            t.join(5)
        chan.close()
        if code == -1 and not chan.eof_received:
            # no exit status and no EOF: the channel vanished with the connection (a command killed by a signal
            # gets an orderly EOF + close from sshd, and -1 here as paramiko ignores "exit-signal")
            raise self._dropped(f"running {shlex.join(shown)}")
        if feed_errors:
            raise TransportError(
                f"reading the command's stdin failed: {_why(feed_errors[0])}", command=shown, host=self.host
            )
        stderr = err.value()
        stderr_text = redact(stderr.decode(errors="replace"), redacted)
        if code == 127 and stderr.rstrip().endswith(_EXEC_FAILED):
            cut = stderr_text.rstrip()[: -len(_EXEC_FAILED)]
            raise TransportError("cannot start command", command=shown, stderr=cut, host=self.host)
        result = CommandResult(shown, code, bytes(out), stderr)
        if check and code != 0:
            raise TransportError("command failed", command=shown, exit_code=code, stderr=stderr_text, host=self.host)
        return result

    def _kill(self, pid: int | None, transport: paramiko.Transport) -> None:
        """Best effort: kill a timed-out command's process group (sshd made it a session leader). The SSH
        "signal" channel request is not used: OpenSSH refuses it for root logins (no privilege separation)."""
        if pid is None or not transport.is_active():
            return
        try:
            chan = transport.open_session(timeout=self.connect_timeout)
            chan.settimeout(self.connect_timeout)
            script = 'kill -KILL -- "-$1"'  # bash: dash's kill cannot take a process group
            argv = ["exec", "bash", "--norc", "--noprofile", "-c", script, "aegir-kill", str(pid)]
            chan.exec_command(shlex.join(argv))
            chan.shutdown_write()
            chan.recv_exit_status()
            chan.close()
        except (OSError, EOFError, paramiko.SSHException):
            pass

    # -- files ------------------------------------------------------------------------------------------
    @contextmanager
    def _sftp_op(self, what: str) -> Iterator[paramiko.SFTPClient]:
        """An SFTP session for one operation; failures become TransportError naming ``what`` and host."""
        transport = self._transport()
        with self._lock:
            try:
                if self._sftp is None:
                    self._sftp = paramiko.SFTPClient.from_transport(transport)
                    if self._sftp is None:
                        raise paramiko.SSHException("the server refused the sftp subsystem")
                yield self._sftp
            except TransportError:
                raise
            except (OSError, EOFError, paramiko.SSHException, paramiko.SFTPError) as e:
                if not transport.is_active():
                    raise self._dropped(what, e) from None
                raise TransportError(f"{what} on {self._where}: {_why(e)}", host=self.host) from None

    def read_file(self, path: str) -> bytes:
        with self._sftp_op(f"cannot read {path}") as sftp, sftp.open(path, "rb") as f:
            f.prefetch()
            return f.read()

    def _gid(self, group: str) -> int:
        if group not in self._gids:
            res = self.run(["getent", "group", "--", group], check=False)
            fields = res.text.strip().split(":")
            if res.exit_code != 0 or len(fields) < 3 or not fields[2].isdigit():
                raise TransportError(f"group {group!r} does not exist on {self._where}", host=self.host)
            self._gids[group] = int(fields[2])
        return self._gids[group]

    def write_file(self, path: str, data: bytes | str, mode: int = 0o644, group: str | None = None) -> None:
        if isinstance(data, str):
            data = data.encode()
        gid = self._gid(group) if group is not None else None
        directory, base = posixpath.split(path)
        tmp = posixpath.join(directory, f".{base}.tmp-{_secrets.token_hex(6)}")
        with self._sftp_op(f"cannot write {path}") as sftp:
            try:
                with _open_new(sftp, tmp, 0o600) as f:  # private until renamed
                    f.set_pipelined(True)
                    f.write(data)
                    f.flush()
                    if gid is not None:  # chgrp first: it may clear setgid bits
                        f.chown(f.stat().st_uid, gid)
                    f.chmod(mode)
                    _fsync(sftp, f)
                sftp.posix_rename(tmp, path)
            except BaseException:
                with suppress(Exception):
                    sftp.remove(tmp)
                raise

    def exists(self, path: str) -> bool:
        with self._sftp_op(f"cannot check {path}") as sftp:
            try:
                sftp.lstat(path)
            except OSError as e:
                if e.errno == errno.ENOENT:
                    return False
                raise
            return True

    def is_dir(self, path: str) -> bool:
        with self._sftp_op(f"cannot check {path}") as sftp:
            try:
                return stat.S_ISDIR(sftp.stat(path).st_mode or 0)
            except OSError as e:
                if e.errno == errno.ENOENT:
                    return False
                raise

    def makedirs(self, path: str, mode: int = 0o755, group: str | None = None) -> None:
        gid = self._gid(group) if group is not None else None
        with self._sftp_op(f"cannot create directory {path}") as sftp:
            missing: list[str] = []
            p = posixpath.normpath(path)
            while True:
                try:
                    st = sftp.stat(p)
                except OSError as e:
                    if e.errno != errno.ENOENT or p in ("/", "."):
                        raise
                    missing.append(p)
                    p = posixpath.dirname(p)
                    continue
                if not stat.S_ISDIR(st.st_mode or 0):
                    raise OSError(errno.ENOTDIR, f"{p} exists and is not a directory")
                break
            for d in reversed(missing):
                try:
                    sftp.mkdir(d)
                except OSError:
                    if not stat.S_ISDIR(sftp.stat(d).st_mode or 0):  # lost a race: fine if it is a dir
                        raise
            if gid is not None:  # chgrp first: it may clear the setgid bit
                sftp.chown(path, sftp.stat(path).st_uid, gid)
            sftp.chmod(path, mode)

    def remove_file(self, path: str) -> None:
        with self._sftp_op(f"cannot remove {path}") as sftp:
            try:
                sftp.remove(path)
            except OSError as e:
                if e.errno != errno.ENOENT:
                    raise

    def remove_tree(self, path: str) -> None:
        if not path:
            raise ValueError("empty path")
        try:
            self.run(["rm", "-rf", "--", path])
        except TransportConnectionError:
            raise
        except TransportError as e:
            raise TransportError(f"cannot remove {path}", stderr=e.stderr, host=self.host) from None

    def symlink(self, target: str, link: str) -> None:
        tmp = f"{link}.tmp-{_secrets.token_hex(6)}"
        with self._sftp_op(f"cannot link {link} -> {target}") as sftp:
            sftp.symlink(target, tmp)
            try:
                sftp.posix_rename(tmp, link)
            except BaseException:
                with suppress(Exception):
                    sftp.remove(tmp)
                raise

    def listdir(self, path: str) -> list[str]:
        with self._sftp_op(f"cannot list {path}") as sftp:
            return sorted(sftp.listdir(path))

    def push_tree(self, local: str, remote: str, excludes: Sequence[str] = ()) -> None:
        trees.push_tree(self, local, remote, excludes)

    def fetch_tree(self, remote: str, local: str) -> None:
        trees.fetch_tree(self, remote, local)


def _drain(recv: Callable[[int], bytes], sink: Callable[[bytes], object]) -> None:
    """Read one channel stream to EOF. A failing sink (e.g. a local tar that died) is drained into the void so
    the remote command never blocks on a full window."""
    broken = False
    while True:
        try:
            data = recv(_CHUNK)
        except (OSError, EOFError, paramiko.SSHException):
            return
        if not data:
            return
        if not broken:
            try:
                sink(data)
            except (OSError, ValueError):
                broken = True


class _Stderr:
    """Captured stderr, capped; the wrapper's leading pid line is taken out."""

    _PID = re.compile(rb"aegir-transport-pid:(\d+)\n")

    def __init__(self) -> None:
        self.buf = bytearray()

    def write(self, data: bytes) -> None:
        room = _STDERR_CAP + 64 - len(self.buf)
        if room > 0:
            self.buf.extend(data[:room])

    def pid(self) -> int | None:
        m = self._PID.search(bytes(self.buf[:4096]))
        return int(m.group(1)) if m else None

    def value(self) -> bytes:
        return self._PID.sub(b"", bytes(self.buf), count=1)[:_STDERR_CAP]


def _feed(chan: paramiko.Channel, preamble: bytes, src: BinaryIO | None, errors: list[BaseException]) -> None:
    """Send the secrets, then ``src`` in chunks, then EOF."""
    try:
        if preamble:
            chan.sendall(preamble)
        while src is not None:
            try:
                chunk = src.read(_CHUNK)
            except ValueError:  # closed stream: treat as end of input, like LocalTransport
                break
            except OSError as e:
                errors.append(e)
                break
            if not chunk:
                break
            chan.sendall(chunk)
    except (OSError, EOFError, paramiko.SSHException):
        pass  # the command exited or the channel closed: it does not want more input
    finally:
        with suppress(OSError, EOFError, paramiko.SSHException):
            chan.shutdown_write()


def _open_new(sftp: paramiko.SFTPClient, path: str, perm: int) -> paramiko.SFTPFile:
    """Create ``path`` exclusively with permissions ``perm`` from the start (paramiko's open() cannot pass the
    mode, and a file created 0644 then chmodded could be opened by someone else in between)."""
    attrs = paramiko.SFTPAttributes()
    attrs.st_mode = perm
    t, msg = sftp._request(CMD_OPEN, path, SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL, attrs)
    if t != CMD_HANDLE:
        raise paramiko.SSHException("expected an SFTP handle")
    return paramiko.SFTPFile(sftp, msg.get_binary(), "wb")


def _fsync(sftp: paramiko.SFTPClient, f: paramiko.SFTPFile) -> None:
    """fsync@openssh.com; skipped when the server does not offer it."""
    try:
        sftp._request(CMD_EXTENDED, "fsync@openssh.com", f.handle)
    except OSError as e:
        if "unsupported" not in str(e).lower():
            raise
