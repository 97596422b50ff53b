"""``aegir server start|stop|status``: a local Prefect server (SQLite) on 127.0.0.1 for one-machine setups.

The server runs detached with its log and pid file in $PREFECT_HOME and requires Prefect's basic auth: a random
credential made once (``$PREFECT_HOME/aegir-api-auth``, 0600), handed to the server in its environment, never in
argv or a log. ``start`` also writes PREFECT_API_URL and PREFECT_API_AUTH_STRING into the active Prefect profile
(0600), so ``aegir``, ``prefect block ls`` and workers on this machine authenticate with it. $PREFECT_HOME is
kept private (0700, every file in it go-rwx) whatever the umask or where it lives.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from aegir.errors import AegirError
from blocks.store import basic_auth, configured_api_url, configured_auth, prefect_home

STARTUP_TIMEOUT = 90.0
CREDENTIAL_FILE = "aegir-api-auth"
USER = "admin"

# What an API answers (``_probe``): nothing; 200 without a credential; 200 with ours; 401 to ours
DOWN, OPEN, OK, REJECTED = "down", "open", "ok", "rejected"

# A POSIX default ACL of only user::rwx, group::---, other::--- (the system.posix_acl_default xattr: version 2,
# then tag, permissions, id per entry): whatever a later process's umask, what it creates in the directory is
# go-rwx (a result file written under umask 022 by `aegir verify` is 0600, a directory 0700).
_PRIVATE_DEFAULT_ACL = struct.pack("<I", 2) + b"".join(
    struct.pack("<HHI", tag, perms, 0xFFFFFFFF) for tag, perms in ((0x01, 0o7), (0x04, 0), (0x20, 0))
)


def _pid_file() -> Path:
    return prefect_home() / "aegir-server.pid"


def _log_file() -> Path:
    return prefect_home() / "aegir-server.log"


def _serve_pid_file() -> Path:
    return prefect_home() / "aegir-serve.pid"


def _serve_log_file() -> Path:
    return prefect_home() / "aegir-serve.log"


def credential_file() -> Path:
    return prefect_home() / CREDENTIAL_FILE


def _prefect_exe() -> str:
    candidate = Path(sys.executable).with_name("prefect")
    return str(candidate) if candidate.exists() else "prefect"


def _running_pid(pid_file: Path | None = None) -> int | None:
    try:
        pid = int((pid_file or _pid_file()).read_text().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


# -- a private PREFECT_HOME ---------------------------------------------------------------------------------
def _private_home() -> Path:
    """PREFECT_HOME created 0700 (or made so), owned by whoever runs this, and everything in it go-rwx."""
    home = prefect_home()
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        owner = home.stat().st_uid
    except OSError as e:
        raise AegirError(f"cannot create PREFECT_HOME {home}: {e.strerror}") from None
    if owner != os.getuid():
        raise AegirError(
            f"PREFECT_HOME {home} belongs to uid {owner}, not to you (uid {os.getuid()}): its owner could read "
            "the API credential; use a PREFECT_HOME of your own"
        )
    _make_private(home)
    return home


def _make_private(home: Path) -> None:
    """chmod go-rwx of the directory and of every file and directory in it (symlinks are left alone), and the
    private default ACL on each directory where the file system has ACLs."""
    try:
        home.chmod(0o700)
        _private_default_acl(home)
        for root, dirs, files in os.walk(home):
            for name in dirs + files:
                path = os.path.join(root, name)
                st = os.lstat(path)
                if stat.S_ISLNK(st.st_mode):
                    continue
                if stat.S_IMODE(st.st_mode) & 0o077:
                    os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)
                if stat.S_ISDIR(st.st_mode):
                    _private_default_acl(Path(path))
    except OSError as e:
        raise AegirError(f"cannot make {e.filename or home} private: {e.strerror}") from None


def _private_default_acl(directory: Path) -> None:
    with contextlib.suppress(OSError, AttributeError):  # no ACLs here: the chmod of every start is what remains
        os.setxattr(directory, "system.posix_acl_default", _PRIVATE_DEFAULT_ACL)


# -- the credential -----------------------------------------------------------------------------------------
def _credential() -> str:
    """The API credential ``admin:<random>``: made once (0600, complete before it appears: written to a private
    temp file, then linked into place, which fails if another start made it first), then reused."""
    path = credential_file()
    if not os.path.lexists(path):
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{CREDENTIAL_FILE}.")  # 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(f"{USER}:{secrets.token_urlsafe(32)}\n")
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    return _read_credential(path)


def _read_credential(path: Path) -> str:
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            raise AegirError(f"{path} is not a regular file of yours: delete it, and `aegir server start` makes one")
        if stat.S_IMODE(st.st_mode) & 0o077:
            os.chmod(path, 0o600)
        text = path.read_text().strip()
    except OSError as e:
        raise AegirError(f"cannot read the API credential {path}: {e.strerror}") from None
    user, sep, password = text.partition(":")
    if not (sep and user and password) or any(c.isspace() for c in text):
        raise AegirError(f"{path} does not hold a credential (user:password): delete it and start again")
    return text


def _login_hint() -> str:
    return (
        f"The API and the UI require a login: the credential is in {credential_file()} (mode 0600); "
        "on the UI's login page, type the whole admin:<password> line from that file."
    )


# -- what an API answers ------------------------------------------------------------------------------------
def _probe(api_url: str, auth: str | None, timeout: float = 2.0) -> str:
    """DOWN, OPEN (an API route answers 200 without a credential), OK (401 without one, 200 with ``auth``) or
    REJECTED (401 to ``auth``, or no ``auth`` to send)."""
    try:
        anonymous = httpx.get(f"{api_url}/admin/version", timeout=timeout)
        if anonymous.status_code == 200:
            return OPEN
        if anonymous.status_code != 401:
            return DOWN
        if not auth:
            return REJECTED
        answer = httpx.get(f"{api_url}/admin/version", timeout=timeout, auth=basic_auth(auth))
    except httpx.HTTPError:
        return DOWN
    return {200: OK, 401: REJECTED}.get(answer.status_code, DOWN)


def _unauthenticated(api_url: str) -> str:
    if api_url.startswith("http://127.0.0.1:") and _running_pid() is not None:
        return (
            f"the Prefect server at {api_url} runs WITHOUT authentication (started by an older `aegir server "
            "start`): whoever reaches it reads every secret. Stop it with `aegir server stop`, then run "
            "`aegir server start` again: it starts with a credential"
        )
    return (
        f"a Prefect API answers at {api_url} WITHOUT authentication (not started by `aegir server start` from "
        f"{prefect_home()}): whoever reaches it reads every secret. Stop it, or use another --port"
    )


# -- start, stop, status ------------------------------------------------------------------------------------
def start(port: int = 4200, serve: bool = True) -> str:
    """The local API (started unless one answers) and, with ``serve``, the deployments served from a background
    ``aegir serve`` with their schedules active (see :func:`start_serving`)."""
    message = _start_api(port)
    return f"{message}\n{start_serving()}" if serve else message


def _start_api(port: int) -> str:
    api_url = f"http://127.0.0.1:{port}/api"
    home = _private_home()
    auth = _credential()
    current = configured_api_url()
    if current and current != api_url:
        state = _probe(current, configured_auth())
        if state == OK:
            return f"A Prefect API is already running at {current} (it accepts the configured credential)"
        if state == OPEN:
            raise AegirError(_unauthenticated(current))
        if state == REJECTED:
            raise AegirError(f"the Prefect API at {current}: credential rejected: {_rejected()}")
        # not answering: the local one is started and made the default
    state = _probe(api_url, auth)
    if state == OPEN:
        raise AegirError(_unauthenticated(api_url))
    if state == REJECTED:
        raise AegirError(
            f"the Prefect server at {api_url} rejects the credential in {credential_file()} (it was started with "
            "another one, e.g. before that file was replaced): `aegir server stop`, then `aegir server start`"
        )
    if state == OK:
        _configure_profile(api_url, auth)
        _make_private(home)
        again = "" if current == api_url else " (now the default)"
        return f"A Prefect API is already running at {api_url}{again}{_upgrade(api_url, auth)}\n{_login_hint()}"
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_API_AUTH_STRING")}
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_SERVER_API_AUTH_STRING": auth,
        }
    )
    log = os.open(_log_file(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        proc = subprocess.Popen(
            [_prefect_exe(), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            umask=0o077,  # its SQLite database, WAL and logs are 0600
        )
    finally:
        os.close(log)
    _write_pid(_pid_file(), proc.pid)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AegirError(f"the Prefect server exited during start-up; see {_log_file()}")
        if _probe(api_url, auth) == OK:
            _configure_profile(api_url, auth)
            _register_block_types(api_url)
            _make_private(home)
            upgraded = _upgrade(api_url, auth)
            return (
                f"Prefect server running at {api_url} (UI http://127.0.0.1:{port}, log {_log_file()}){upgraded}\n"
                f"{_login_hint()}"
            )
        time.sleep(0.5)
    raise AegirError(f"the Prefect server did not answer within {STARTUP_TIMEOUT:.0f} s; see {_log_file()}")


def _configure_profile(api_url: str, auth: str) -> None:
    """PREFECT_API_URL and PREFECT_API_AUTH_STRING in the active profile, through Prefect's own profile API (in
    this process: no `prefect config set` whose argv would show the credential); the profiles file 0600."""
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_URL,
        get_current_settings,
        update_current_profile,
    )

    path = get_current_settings().profiles_path
    if path is not None and path.exists():
        path.chmod(0o600)  # before the credential is written into it
    update_current_profile({PREFECT_API_URL: api_url, PREFECT_API_AUTH_STRING: auth})
    if path is not None:
        path.chmod(0o600)


def _upgrade(api_url: str, auth: str) -> str:
    """Contexts an older Aegir Flows stored with their state inside the block are split (README, "Configuration
    and state"); what was moved, for the message."""
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    from blocks.store import BlockStore

    store = BlockStore(api_url, auth)
    try:  # registering the state types is Prefect's client's work: pointed at this server
        with temporary_settings({PREFECT_API_URL: api_url, PREFECT_API_AUTH_STRING: auth}):
            moved = store.upgrade()
    finally:
        store.close()
    return f"\nMoved the task-managed state of {len(moved)} context(s) out of their blocks" if moved else ""


def _register_block_types(api_url: str) -> None:
    """So the UI can create servers, platforms and sites before any was saved from the CLI. The child reads the
    credential from the profile just written (an older one in the environment would override it)."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_AUTH_STRING"}
    env["PREFECT_API_URL"] = api_url
    result = subprocess.run(
        [_prefect_exe(), "block", "register", "-m", "blocks.types"],
        env=env,
        capture_output=True,
        text=True,
        umask=0o077,
    )
    if result.returncode != 0:
        raise AegirError(f"registering the aegir block types failed: {result.stdout[-300:]}{result.stderr[-300:]}")


SERVE_STARTUP_TIMEOUT = 120.0
SERVE_STOP_TIMEOUT = 90.0
API_STOP_TIMEOUT = 10.0
SERVING = "being served"  # what Prefect's serve prints once it polls for runs


def start_serving() -> str:
    """``aegir serve`` in the background (its own session, stdin closed, output to $PREFECT_HOME/aegir-serve.log,
    pid in aegir-serve.pid): every deployment of prefect.yaml served with its schedules. Returns once Prefect says
    they are being served."""
    pid = _running_pid(_serve_pid_file())
    if pid is not None:
        return f"Deployments already served by `aegir serve` (pid {pid}, log {_serve_log_file()})"
    from deployments.code import CODE_ROOT

    log_path = _serve_log_file()
    start_at = log_path.stat().st_size if log_path.exists() else 0
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        proc = subprocess.Popen(  # the API and its credential: the profile, or what this environment names
            [str(Path(sys.executable).with_name("aegir")), "serve"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=CODE_ROOT,
            start_new_session=True,
            umask=0o077,
        )
    finally:
        os.close(log)
    _write_pid(_serve_pid_file(), proc.pid)
    deadline = time.monotonic() + SERVE_STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        with open(log_path, "rb") as f:
            f.seek(start_at)
            out = f.read().decode(errors="replace")
        if SERVING in out:
            return (
                f"Deployments served with their schedules by `aegir serve` (pid {proc.pid}, log {log_path}); "
                "`aegir server stop` stops it and the API"
            )
        if proc.poll() is not None:
            _serve_pid_file().unlink(missing_ok=True)
            raise AegirError(f"`aegir serve` exited during start-up (exit {proc.returncode}); see {log_path}")
        time.sleep(0.5)
    raise AegirError(f"`aegir serve` did not start serving within {SERVE_STARTUP_TIMEOUT:.0f} s; see {log_path}")


def stop_serving() -> str | None:
    """SIGTERM to the background ``aegir serve`` (not to its process group: a run it is finishing ends on its
    own), then wait for it: it pauses the deployments on its way out. None when none was running."""
    pid = _running_pid(_serve_pid_file())
    if pid is None:
        _serve_pid_file().unlink(missing_ok=True)
        return None
    killed = _terminate(pid, SERVE_STOP_TIMEOUT, group=False)
    _serve_pid_file().unlink(missing_ok=True)
    if killed:
        return f"`aegir serve` (pid {pid}) did not stop within {SERVE_STOP_TIMEOUT:.0f} s: killed"
    return f"Stopped `aegir serve` (pid {pid}): deployments paused"


def _terminate(pid: int, timeout: float, group: bool) -> bool:
    """SIGTERM to ``pid`` (or its process group), then SIGKILL to its group if it has not ended within
    ``timeout`` seconds. Returns whether it had to be killed."""
    (os.killpg if group else os.kill)(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    if not _alive(pid):
        return False
    os.killpg(pid, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    with contextlib.suppress(OSError):  # a zombie (our own child, not yet reaped) has ended
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _write_pid(path: Path, pid: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(str(pid))


def stop() -> str:
    served = stop_serving()
    pid = _running_pid()
    if pid is None:
        return "\n".join(filter(None, [served, "No local Prefect server started by aegir is running"]))
    _terminate(pid, API_STOP_TIMEOUT, group=True)
    _pid_file().unlink(missing_ok=True)
    return "\n".join(filter(None, [served, f"Stopped the local Prefect server (pid {pid})"]))


def _rejected() -> str:
    """What the API refused: the configured credential, and where it comes from."""
    if os.environ.get("PREFECT_API_AUTH_STRING"):
        sent = "it answers 401 to PREFECT_API_AUTH_STRING from the environment"
    elif configured_auth():
        sent = f"it answers 401 to PREFECT_API_AUTH_STRING of the active profile in {prefect_home() / 'profiles.toml'}"
    else:
        sent = "it answers 401 and no credential is configured (PREFECT_API_AUTH_STRING, environment or profile)"
    if credential_file().exists():
        sent += f"; the local server's credential is in {credential_file()} (`aegir server start` configures it)"
    return sent


def status() -> tuple[str, bool]:
    message, ok = _api_status()
    pid = _running_pid(_serve_pid_file())
    served = f"deployments served by `aegir serve` (pid {pid})" if pid else "deployments not served from here"
    return f"{message}\n{served}", ok


def _api_status() -> tuple[str, bool]:
    url = configured_api_url()
    if url is None:
        return "No Prefect API configured: start one with `aegir server start`", False
    state = _probe(url, configured_auth())
    if state == OK:
        return f"Prefect API at {url}: up, authenticated with the configured credential", True
    if state == OPEN:
        return f"Prefect API at {url}: up, but {_unauthenticated(url)}", False
    if state == REJECTED:
        return f"Prefect API at {url}: credential rejected: {_rejected()}", False
    return f"Prefect API at {url}: not answering (start it with `aegir server start`)", False
