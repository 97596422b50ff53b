"""Real remote hosts for integration tests (issue #7): network namespaces on this machine.

Register with ``pytest_plugins = ["tests.support.hosts"]`` (or ``-p tests.support.hosts``). Runs as root.

Each host is a network namespace (``ip netns``) with its own address on a private /24, joined to the root
namespace (where the tests and the product — the "master" — run) by a veth pair whose root side is a port of
a per-session bridge, so the master reaches every host and the hosts reach each other::

    root namespace (master)          bridge aeg<tag>-br  10.231.N.1/24
      ├── veth aeg<tag>-web1  ──  eth0 10.231.N.2  in netns aegir-<tag>-web1: sshd :22, nginx :80, php-fpm
      ├── veth aeg<tag>-db1   ──  eth0 10.231.N.3  in netns aegir-<tag>-db1:  sshd :22, MariaDB :3306
      └── veth aeg<tag>-web2  ──  eth0 10.231.N.4  (created on demand)

``<tag>`` is 4 random hex digits per session and ``N`` a /24 no interface of the root namespace uses, both
picked under a machine-wide lock, so sessions running at the same time never share a name, an address or a
process; nothing listens on the root namespace's 127.0.0.1 (other sessions' nginx / php-fpm / MariaDB there
are never touched). Addresses are handed out in creation order (.2, .3, ...).

Namespaces share the filesystem, except for one path. Every host has its own tree
``/tmp/aegir-hosts-<tag>/<host>/`` (its daemons' configs, keys, sockets, pid files, logs, MariaDB datadir),
at the same path in every view. And every session has one *shared path* ``P = /tmp/aegir-hosts-<tag>/shared``
(:attr:`HostNetwork.shared`, also ``host.shared``) that each host sees privately, as Aegir's hosts do with
``/var/aegir``: in the root mount namespace (the master: pytest and the product) ``P`` is an ordinary
directory, the master's own files; in a host, ``P`` is a bind mount of that host's private directory
``/tmp/aegir-hosts-<tag>/<host>/shared`` (``host.private``). So one absolute path shows different contents on
the master and on each host, and a file only gets from the master to a host at the same path if something
copied it there over SSH. The ``aegir_root`` of every host is ``P/aegir``, the same string on every host,
and the master's own ``aegir_root`` for these tests is the same ``P/aegir`` (:attr:`HostNetwork.aegir_root`),
seen in the root namespace. The tests may look into a host's view directly:
:meth:`NetnsHost.master_path` maps a path of the host's view to where the master sees that file
(``P/...`` → ``host.private/...``; other paths are unchanged). Absolute symlinks into ``P`` resolve in the
view of whoever follows them (through ``master_path`` that is the master's). A host can still read the other
hosts' private directories by their ``<host>/shared`` paths: the product must only use paths under ``P``.

How a host gets its private view: each host has one long-lived *holder* process, started with
``ip netns exec <netns> unshare --mount --uts --propagation private`` (its own mount and UTS namespaces, no
propagation to or from the root namespace), which sets the host name, makes the bind mount ``host.private`` →
``P`` and then sleeps. Every process of the host is started inside the holder's namespaces with ``nsenter
--target <holder> --mount --uts --net``: sshd (so everything it spawns: the product's commands and SFTP over
SSH), nginx, php-fpm, mariadbd, config tests, and :func:`run_in`. (A plain ``ip netns exec`` would not do: it
makes a new mount namespace on every call.) ``hostname`` prints the host name in all of them.

How a test lays out a platform for a remote web server: build it on the master under
``P/platforms/<name>`` (the master's view: ``host_network.shared / "platforms" / name``) and give the platform
that ``root`` (``aegir save --context_type=platform --root=P/platforms/<name> --web_server=@web1...``); the
product must push the code to the same path on the web host, where the test finds it with
``web1_host.master_path(...)`` (or over SSH / :func:`run_in`). Before the push the web host has no
``P/platforms/<name>`` at all; nginx and php-fpm on the host serve and run what is in the host's view only.

Where the web daemons look: nginx's ``http {}`` includes ``P/aegir/config/nginx*.conf``, resolved in the
host's view (what the product writes there over SSH); its own config, temp dirs and logs are in
``<host>/nginx/`` and php-fpm's socket is ``<host>/php-fpm/php-fpm.sock``, outside ``P``, so the same path
everywhere (the master can check the socket; a vhost written by the product names it as
``php_fpm_socket``).

Per host, started inside its namespaces (see above):

* ``sshd`` on ``<address>:22`` (own ed25519 host key), key authentication for ``root`` with one client key
  per session (the master's key);
* web hosts: ``php-fpm`` (workers as www-data) on a unix socket in the host's tree, and ``nginx`` on
  ``*:80`` of the namespace whose ``http {}`` includes ``<aegir_root>/config/nginx*.conf`` (what Debian's
  ``/etc/nginx/conf.d/aegir.conf`` does), so product-written server confs and vhosts are picked up; until
  one exists an unknown host name gets 410 from the fixture itself;
* db hosts: a private ``mariadbd`` (datadir from ``mariadb-install-db``) on ``<address>:3306`` (and a unix
  socket in the host's tree), ``--skip-name-resolve``, with an admin ``aegir_admin`` (random password, all
  privileges WITH GRANT OPTION) at ``10.231.N.%`` (the master and every host), ``localhost`` and
  ``127.0.0.1``; ``root@localhost`` (unix socket, no password) for the tests (:meth:`NetnsHost.root_connection`).

:meth:`NetnsHost.server_fields` gives the ``aegir save --context_type=server`` properties that target a host
(:meth:`NetnsHost.save_args` the same as CLI arguments with the secrets in files).

Fixtures (session scope): ``host_network`` (:class:`HostNetwork`), ``web1_host``, ``web2_host``,
``db1_host`` (:class:`NetnsHost`). Helpers: :func:`run_in`, :func:`http_get`, :func:`stop_sshd`,
:func:`start_sshd`, :func:`link_down`, :func:`link_up`.

Teardown (fixture finaliser, plus ``atexit``) stops the daemons, kills whatever else still runs in the
namespaces (e.g. commands the product started over SSH) and the holders, deletes the namespaces (their veth
pairs go with them) and the bridge, then the tree. A session that died without teardown (SIGKILL) is cleaned
up by the next one: every session records its owner (pid + start time) in
``/tmp/aegir-hosts-<tag>/owner.json`` before it creates anything, and the processes (holders included: they
are in the network namespace; each also records itself in ``<host>/holder.json``, so that the processes of its
mount namespace die even when the network namespace is gone), namespaces, links and trees of a tag whose
owner is gone are removed at start. By hand: ``python -m tests.support.hosts cleanup``
(``list`` shows them; ``up`` starts web1 + db1 until Ctrl-C).

PYTEST_DONT_REWRITE (test modules import the helpers before pytest loads this module as their plugin)
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest

from aegir.transport.ssh import SSHTransport
from tests.support.sshd import SFTP_SERVER_CANDIDATES, SSHD, SSHServer, _keygen
from tests.support.webservers import NGINX, NGINX_CONF, NGINX_ETC, PHP_FPM, WEB_USER, _unix_ready

IP = shutil.which("ip", path="/usr/sbin:/sbin:/usr/bin:/bin") or "ip"
UNSHARE = shutil.which("unshare", path="/usr/bin:/bin") or "unshare"
NSENTER = shutil.which("nsenter", path="/usr/bin:/bin") or "nsenter"
MOUNT = shutil.which("mount", path="/usr/bin:/bin") or "mount"
MARIADBD = "/usr/sbin/mariadbd"
MARIADB_INSTALL_DB = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
MYSQL_USER = "mysql"

SUBNET_PREFIX = "10.231"  # one 10.231.N.0/24 per session
NETNS_PREFIX = "aegir-"  # netns aegir-<tag>-<host>
LINK_PREFIX = "aeg"  # bridge aeg<tag>-br, root-side veth aeg<tag>-<host> (IFNAMSIZ: at most 15 characters)
BASE_PREFIX = "aegir-hosts-"  # /tmp/aegir-hosts-<tag>/
SHARED = "shared"  # the shared path P = /tmp/aegir-hosts-<tag>/shared; a host's private view of it: <host>/shared
TMP = Path("/tmp")
LOCK_PATH = Path("/run/lock" if os.path.isdir("/run/lock") else "/tmp") / "aegir-test-hosts.lock"
_TAG_RE = r"[0-9a-f]{4}"
_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,6}$")  # "aeg" + tag + "-" + name fits in 15 characters
_NETNS_RE = re.compile(rf"^{NETNS_PREFIX}({_TAG_RE})-[a-z][a-z0-9]*$")
_LINK_RE = re.compile(rf"^{LINK_PREFIX}({_TAG_RE})-[a-z][a-z0-9]*$")
_BASE_RE = re.compile(rf"^{BASE_PREFIX}({_TAG_RE})$")

SSH_PORT = 22
HTTP_PORT = 80
DB_PORT = 3306
DB_ADMIN = "aegir_admin"
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


# -- small helpers -------------------------------------------------------------------------------------------
def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _run([IP, *args], check=check)


def _tail(path: Path, limit: int = 6000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def _tcp_ready(address: str, port: int, banner: bytes = b"") -> bool:
    try:
        with socket.create_connection((address, port), timeout=0.5) as s:
            if banner:
                s.settimeout(2)
                return s.recv(len(banner)).startswith(banner)
            return True
    except OSError:
        return False


def _start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks): a pid + start time names one process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()[19]


def _mkdir(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    return path


@contextlib.contextmanager
def _machine_lock() -> Iterator[None]:
    """Serialises tag / subnet choice and stale cleanup between sessions on this machine."""
    with open(LOCK_PATH, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def netns_pids(netns: str) -> list[int]:
    """Processes whose network namespace is ``netns`` (``ip netns pids``)."""
    result = _ip("netns", "pids", netns, check=False)
    return [int(p) for p in result.stdout.split() if p.isdigit()]


def _kill_all(netns: str, sig: int = signal.SIGKILL, timeout: float = 10.0) -> None:
    """Kill every process left in our namespace ``netns`` (they are all this session's) and wait for them."""
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for p in netns_pids(netns) if p != os.getpid()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)


def _kill_mount_namespace(mnt: str, timeout: float = 10.0) -> None:
    """Kill every process in the mount namespace ``mnt`` (``mnt:[inode]``, a host's: never the master's)."""
    if mnt == os.readlink("/proc/self/ns/mnt"):
        raise ValueError("refusing to kill the processes of our own mount namespace")
    deadline = time.monotonic() + timeout
    while True:
        pids = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{entry.name}/ns/mnt") == mnt:
                        pids.append(int(entry.name))
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


# -- daemons -------------------------------------------------------------------------------------------------
@dataclass
class Daemon:
    """One foreground daemon started inside a host's namespaces; ``argv`` is the command inside them,
    ``enter`` what runs it there (``nsenter`` into the host's holder; ``ip netns exec`` for the holder)."""

    name: str
    netns: str
    argv: list[str]
    log: Path
    ready: Callable[[], bool]
    enter: Callable[[], list[str]]  # called at each start: a restarted daemon enters the namespaces again
    stop_signal: int = signal.SIGTERM
    extra_logs: tuple[Path, ...] = ()
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        return [*self.enter(), *self.argv]  # ip netns exec / nsenter / unshare exec: Popen's pid is the daemon's

    def start(self, timeout: float = STARTUP_TIMEOUT) -> None:
        if self.running():
            return
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, not the daemons
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self} exited with code {self.proc.returncode} during startup\n{self.diagnostics()}"
                )
            if self.ready():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self} not ready after {timeout} s\n{self.diagnostics()}")
            time.sleep(0.02)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        if not self.running():
            return
        assert self.proc is not None
        self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)

    def diagnostics(self) -> str:
        return "\n".join(f"--- {p} ---\n{_tail(p)}" for p in (self.log, *self.extra_logs) if p.exists())

    def __str__(self) -> str:
        return f"{self.name} in {self.netns} ({shlex.join(self.argv)})"


# -- hosts ---------------------------------------------------------------------------------------------------
@dataclass(eq=False)
class NetnsHost:
    """A host of the test network: its namespaces, address, SSH login, services and ``aegir_root``."""

    name: str  # "web1"
    role: str  # "web" | "db"
    netns: str  # "aegir-<tag>-web1"
    veth: str  # root-namespace side of its veth pair ("aeg<tag>-web1"); eth0 inside
    address: str  # "10.231.N.2"
    dir: Path  # the host's own tree: /tmp/aegir-hosts-<tag>/web1 (same path in every view)
    shared: Path  # the session's shared path P (/tmp/aegir-hosts-<tag>/shared): this host sees `private` there
    aegir_root: str  # <shared>/aegir: the same string on every host and on the master
    client_private_key: str  # OpenSSH PEM text of the master's (session's) client key
    client_key_path: str
    host_public_key: str = ""  # "ssh-ed25519 AAAA..."
    host_key_path: str = ""
    user: str = "root"
    ssh_port: int = SSH_PORT
    web_group: str = WEB_USER
    # web hosts
    http_port: int | None = None
    php_fpm_socket: str | None = None
    nginx_conf: str | None = None
    http_config_test_cmd: str | None = None
    http_restart_cmd: str | None = None
    # db hosts
    db_port: int | None = None
    db_user: str | None = None
    db_password: str | None = None
    db_socket: str | None = None
    daemons: dict[str, Daemon] = field(default_factory=dict, repr=False)

    # -- what the product needs ---------------------------------------------------------------------------
    def ssh_fields(self) -> dict[str, Any]:
        return {
            "remote_host": self.address,
            "transport": "ssh",
            "ssh_user": self.user,
            "ssh_port": self.ssh_port,
            "ssh_private_key": self.client_private_key,
            "ssh_host_key": self.host_public_key,
            "aegir_root": self.aegir_root,
        }

    def server_fields(self) -> dict[str, Any]:
        """The ServerContext properties (``aegir save --context_type=server``) of this host."""
        fields = self.ssh_fields()
        if self.role == "web":
            fields.update(
                http_service_type="nginx",
                http_port=self.http_port,
                http_restart_cmd=self.http_restart_cmd,
                http_config_test_cmd=self.http_config_test_cmd,
                web_group=self.web_group,
                php_fpm_socket=self.php_fpm_socket,
            )
        if self.role == "db":
            fields.update(
                http_service_type="null",
                db_service_type="mysql",
                db_host=self.address,
                db_port=self.db_port,
                db_user=self.db_user,
                db_password=self.db_password,
            )
        return fields

    def save_args(self) -> list[str]:
        """:meth:`server_fields` as ``aegir save`` arguments; the secrets as ``--PROP-file=`` (0600 files)."""
        args = []
        for key, value in self.server_fields().items():
            if key == "ssh_private_key":
                args.append(f"--ssh_private_key-file={self.client_key_path}")
            elif key == "db_password":
                path = self.dir / "db_password"
                if not path.exists():
                    path.write_text(str(value))
                    path.chmod(0o600)
                args.append(f"--db_password-file={path}")
            else:
                args.append(f"--{key}={value}")
        return ["--context_type=server", *args]

    # -- the host's view of the shared path -------------------------------------------------------------
    @property
    def private(self) -> Path:
        """Where the master sees this host's view of :attr:`shared` (bind-mounted at ``shared`` in the host)."""
        return self.dir / SHARED

    def master_path(self, path: str | os.PathLike[str]) -> Path:
        """The master's path of the file that this host sees at the absolute ``path``: under :attr:`shared`
        it is in :attr:`private`; any other path is the same file on the master (shared filesystem)."""
        p = Path(os.path.normpath(path))
        if not p.is_absolute():
            raise ValueError(f"{path!r}: an absolute path of {self.name}'s view")
        if p.is_relative_to(self.shared):
            return self.private / p.relative_to(self.shared)
        return p

    @property
    def holder_pid(self) -> int:
        """The pid of the process that holds this host's mount and UTS namespaces (see the module doc)."""
        holder = self.daemons.get("holder")
        if holder is None or not holder.running() or holder.pid is None:
            raise RuntimeError(f"{self.name}: its namespace holder is not running")
        return holder.pid

    def enter(self, cwd: str = "/") -> list[str]:
        """The command prefix that runs a command as a process of this host (its network, mount and UTS
        namespaces), in ``cwd`` of the host's view. ``nsenter`` execs: the command keeps nsenter's pid."""
        return [NSENTER, f"--target={self.holder_pid}", "--mount", "--uts", "--net", f"--wd={cwd}", "--"]

    # -- access from the tests ----------------------------------------------------------------------------
    def transport(self, **kwargs: Any) -> SSHTransport:
        """A new (lazily connecting) ``SSHTransport`` to this host, as the product would open it."""
        opts: dict[str, Any] = {
            "port": self.ssh_port,
            "user": self.user,
            "private_key": self.client_private_key,
            "host_key": self.host_public_key,
            "connect_timeout": 5.0,
        }
        opts.update(kwargs)
        return SSHTransport(self.address, **opts)

    def ssh_server(self) -> SSHServer:
        """This host's sshd as the ``tests.support.sshd.SSHServer`` the SSH tests take."""
        return SSHServer(
            host=self.address,
            port=self.ssh_port,
            user=self.user,
            client_private_key=self.client_private_key,
            host_public_key=self.host_public_key,
            host_key_path=self.host_key_path,
            client_key_path=self.client_key_path,
            log_path=str(self.daemons["sshd"].log),
        )

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.http_port}"

    def run(self, argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess:
        return run_in(self, argv, **kwargs)

    def root_connection(self, database: str | None = None) -> pymysql.connections.Connection:
        """root@localhost on this db host's MariaDB (unix socket, autocommit)."""
        if self.db_socket is None:
            raise ValueError(f"{self.name} has no MariaDB")
        return pymysql.connect(unix_socket=self.db_socket, user="root", password="", database=database, autocommit=True)

    def admin_connection(self, database: str | None = None) -> pymysql.connections.Connection:
        """The admin user over TCP from the root namespace (as the master connects)."""
        return pymysql.connect(
            host=self.address,
            port=self.db_port or DB_PORT,
            user=self.db_user,
            password=self.db_password or "",
            database=database,
            autocommit=True,
            connect_timeout=5,
        )

    def diagnostics(self) -> str:
        return "\n".join(d.diagnostics() for d in self.daemons.values())

    def stop_daemons(self) -> None:
        for daemon in reversed(list(self.daemons.values())):
            with contextlib.suppress(Exception):  # teardown goes on; _kill_all follows
                daemon.stop()


# -- the network ---------------------------------------------------------------------------------------------
class HostNetwork:
    """One session's bridge, subnet and hosts. ``web_host`` / ``db_host`` start a host (once per name).

    ``shared`` is the session's shared path P (an ordinary directory here, in the master's view; each host
    sees its own private directory there) and ``aegir_root`` (``P/aegir``) the master's ``aegir_root``, the
    same string as every host's."""

    def __init__(self, tag: str, subnet: ipaddress.IPv4Network, base: Path) -> None:
        self.tag = tag
        self.subnet = subnet
        self.base = base
        self.shared = base / SHARED
        self.aegir_root = str(self.shared / "aegir")
        self.bridge = f"{LINK_PREFIX}{tag}-br"
        self.gateway = str(subnet.network_address + 1)  # the root namespace (master) on the bridge
        self.hosts: dict[str, NetnsHost] = {}
        self._next = 2
        self._lock = threading.RLock()
        self._starting: dict[str, threading.Event] = {}
        self._closed = False
        self._client_key = base / "client_ed25519"
        self.client_private_key = ""
        self.grant_pattern = ".".join(str(subnet.network_address).split(".")[:3]) + ".%"

    # -- creation ---------------------------------------------------------------------------------------------
    @classmethod
    def create(cls) -> HostNetwork:
        """Clean up dead sessions' leftovers, then pick a tag and a free /24 and create the bridge."""
        _require()
        with _machine_lock():
            cleanup_stale()
            tag = _free_tag()
            subnet = _free_subnet()
            base = _mkdir(TMP / f"{BASE_PREFIX}{tag}")
            owner = {"pid": os.getpid(), "start": _start_time(os.getpid()), "subnet": str(subnet)}
            (base / "owner.json").write_text(json.dumps(owner))
            net = cls(tag, subnet, base)
            atexit.register(net.close)
            _mkdir(Path(net.aegir_root))  # the master's P and P/aegir
            try:
                _ip("link", "add", "name", net.bridge, "type", "bridge", "forward_delay", "0")
                _ip("addr", "add", f"{net.gateway}/{subnet.prefixlen}", "dev", net.bridge)
                _ip("link", "set", net.bridge, "up")
            except BaseException:
                net.close()
                raise
        try:
            _keygen(net._client_key)
            net.client_private_key = net._client_key.read_text()
        except BaseException:
            net.close()
            raise
        return net

    def _claim(self, name: str) -> tuple[str, bool]:
        """(address, True) for a host to start now, or (address, False) when it exists or another thread
        is starting it (then wait)."""
        if not _NAME_RE.match(name):
            raise ValueError(f"host name {name!r}: 1-7 lowercase letters and digits, starting with a letter")
        while True:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the host network is closed")
                if name in self.hosts:
                    return self.hosts[name].address, False
                event = self._starting.get(name)
                if event is None:
                    self._starting[name] = threading.Event()
                    address = str(self.subnet.network_address + self._next)
                    self._next += 1
                    return address, True
            event.wait()

    def web_host(self, name: str = "web1") -> NetnsHost:
        """The web host ``name`` (started on first use): sshd, php-fpm, nginx."""
        return self._host(name, "web")

    def db_host(self, name: str = "db1") -> NetnsHost:
        """The db host ``name`` (started on first use): sshd, MariaDB."""
        return self._host(name, "db")

    def start_hosts(self, web: Sequence[str] = (), db: Sequence[str] = ()) -> dict[str, NetnsHost]:
        """Start several hosts in parallel; returns them by name."""
        jobs = [(n, "web") for n in web] + [(n, "db") for n in db]
        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
            hosts = list(pool.map(lambda job: self._host(*job), jobs))
        return {h.name: h for h in hosts}

    def _host(self, name: str, role: str) -> NetnsHost:
        address, mine = self._claim(name)
        if not mine:
            with self._lock:
                host = self.hosts.get(name)
            if host is None:
                raise RuntimeError(f"host {name} failed to start (see the first error)")
            if host.role != role:
                raise ValueError(f"host {name} is a {host.role} host, not a {role} host")
            return host
        try:
            host = self._make_host(name, role, address)  # cleans up after itself when it fails
            with self._lock:
                self.hosts[name] = host
            return host
        finally:
            with self._lock:
                self._starting.pop(name).set()

    def _make_host(self, name: str, role: str, address: str) -> NetnsHost:
        netns, veth = f"{NETNS_PREFIX}{self.tag}-{name}", f"{LINK_PREFIX}{self.tag}-{name}"
        shutil.rmtree(self.base / name, ignore_errors=True)  # what an earlier failed attempt left
        hdir = _mkdir(self.base / name)
        host = NetnsHost(
            name=name,
            role=role,
            netns=netns,
            veth=veth,
            address=address,
            dir=hdir,
            shared=self.shared,
            aegir_root=self.aegir_root,
            client_private_key=self.client_private_key,
            client_key_path=str(self._client_key),
        )
        _mkdir(host.master_path(host.aegir_root))  # <dir>/shared/aegir: P/aegir in the host's view
        # the namespace, its veth pair (eth0 inside) on the bridge, lo up
        _ip("netns", "add", netns)
        try:
            _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
            _ip("link", "set", veth, "master", self.bridge, "up")
            _ip("-n", netns, "addr", "add", f"{address}/{self.subnet.prefixlen}", "dev", "eth0")
            _ip("-n", netns, "link", "set", "eth0", "up")
            _ip("-n", netns, "link", "set", "lo", "up")
            _ip("-n", netns, "route", "add", "default", "via", self.gateway)
        except BaseException:
            _ip("netns", "del", netns, check=False)
            raise
        starters = [lambda: _start_sshd_daemon(host)]
        if role == "web":
            starters += [lambda: _start_php_fpm(host), lambda: _start_nginx(host)]
        elif role == "db":
            starters.append(lambda: _start_mariadb(host, self.grant_pattern))
        try:
            _start_holder(host)  # first: every other process of the host enters its namespaces
            with ThreadPoolExecutor(max_workers=len(starters)) as pool:
                futures = [pool.submit(s) for s in starters]
                failed = [e for f in futures if (e := f.exception()) is not None]
            if failed:
                raise failed[0]
        except BaseException:
            _destroy_host(host)
            raise
        return host

    # -- teardown ---------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop everything, delete namespaces, links and the tree. Idempotent; never raises."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            hosts = list(self.hosts.values())
        for host in reversed(hosts):
            with contextlib.suppress(Exception):
                _destroy_host(host)
        with contextlib.suppress(Exception):
            _cleanup_tag(self.tag)  # also whatever a host that failed half-way left behind
        atexit.unregister(self.close)


def _destroy_host(host: NetnsHost) -> None:
    host.stop_daemons()
    _kill_all(host.netns)
    _ip("netns", "del", host.netns, check=False)  # its veth pair goes with it


# -- per-service startup -------------------------------------------------------------------------------------
# The holder: its own mount namespace (from `ip netns exec`'s, made private) and UTS namespace; sets the host
# name, bind-mounts the host's private dir on the shared path P, then sleeps until killed at teardown.
HOLDER_SCRIPT = 'hostname "$1" && {mount} --bind "$2" "$3" && exec sleep infinity'


def _mounted(pid: int | None, path: Path) -> bool:
    """Whether ``path`` is a mount point in the mount namespace of process ``pid``."""
    if pid is None:
        return False
    try:
        mountinfo = Path(f"/proc/{pid}/mountinfo").read_text()
    except OSError:
        return False
    return any(line.split()[4] == str(path) for line in mountinfo.splitlines() if len(line.split()) > 4)


def _start_holder(host: NetnsHost) -> None:
    host.private.mkdir(parents=True, exist_ok=True)
    daemon = Daemon(
        name="holder",
        netns=host.netns,
        argv=[
            *(UNSHARE, "--mount", "--uts", "--propagation", "private", "--"),
            *("sh", "-c", HOLDER_SCRIPT.format(mount=MOUNT), "holder", host.name, str(host.private), str(host.shared)),
        ],
        log=host.dir / "holder.log",
        ready=lambda: _mounted(daemon.pid, host.shared),  # the bind mount is made after the host name is set
        enter=lambda: [IP, "netns", "exec", host.netns],
        stop_signal=signal.SIGKILL,
    )
    host.daemons["holder"] = daemon
    daemon.start()
    pid = daemon.pid
    (host.dir / "holder.json").write_text(json.dumps({"pid": pid, "start": _start_time(pid) if pid else None}))


SSHD_CONFIG = """\
Port {port}
ListenAddress {address}
HostKey {host_key}
PidFile {dir}/sshd.pid
AuthorizedKeysFile {authorized}
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
UsePAM no
UseDNS no
PrintMotd no
MaxStartups 100
MaxSessions 100
LogLevel INFO
Subsystem sftp {sftp}
"""


def _start_sshd_daemon(host: NetnsHost) -> None:
    sdir = _mkdir(host.dir / "ssh", 0o700)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
    host_key = sdir / "ssh_host_ed25519_key"
    _keygen(host_key)
    authorized = sdir / "authorized_keys"
    authorized.write_text(Path(host.client_key_path + ".pub").read_text())
    authorized.chmod(0o600)
    sftp = next((p for p in SFTP_SERVER_CANDIDATES if os.path.exists(p)), "internal-sftp")
    config = sdir / "sshd_config"
    config.write_text(
        SSHD_CONFIG.format(
            port=host.ssh_port, address=host.address, host_key=host_key, dir=sdir, authorized=authorized, sftp=sftp
        )
    )
    host.host_key_path = str(host_key)
    host.host_public_key = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
    daemon = Daemon(
        name="sshd",
        netns=host.netns,
        argv=[SSHD, "-D", "-e", "-f", str(config)],
        log=sdir / "sshd.log",
        ready=lambda: _tcp_ready(host.address, host.ssh_port, b"SSH-"),
        enter=host.enter,
    )
    host.daemons["sshd"] = daemon
    daemon.start()


PHP_FPM_CONF = """\
[global]
pid = {dir}/php-fpm.pid
error_log = {dir}/php-fpm.log
daemonize = no

[{name}]
user = {user}
group = {user}
listen = {socket}
listen.owner = {user}
listen.group = {user}
listen.mode = 0660
pm = static
pm.max_children = 3
catch_workers_output = yes
"""


def _start_php_fpm(host: NetnsHost) -> None:
    fdir = _mkdir(host.dir / "php-fpm")
    socket_path = str(fdir / "php-fpm.sock")
    conf = fdir / "php-fpm.conf"
    conf.write_text(PHP_FPM_CONF.format(dir=fdir, name=host.name, socket=socket_path, user=WEB_USER))
    host.php_fpm_socket = socket_path
    daemon = Daemon(
        name="php-fpm",
        netns=host.netns,
        argv=[PHP_FPM, "--nodaemonize", "--fpm-config", str(conf)],
        log=fdir / "php-fpm.stdout",
        ready=lambda: _unix_ready(socket_path),
        enter=host.enter,
        stop_signal=signal.SIGQUIT,
        extra_logs=(fdir / "php-fpm.log",),
    )
    host.daemons["php-fpm"] = daemon
    daemon.start()


def _start_nginx(host: NetnsHost) -> None:
    ndir = _mkdir(host.dir / "nginx")
    _mkdir(ndir / "temp")
    for name in ("mime.types", "fastcgi_params", "fastcgi.conf"):  # so `include fastcgi_params;` works
        shutil.copy(os.path.join(NGINX_ETC, name), ndir / name)
    host.http_port = HTTP_PORT
    conf = ndir / "nginx.conf"
    fields = {"tmp": ndir, "aegir_root": host.aegir_root, "port": host.http_port, "user": WEB_USER}
    conf.write_text(NGINX_CONF.format(**fields, who=f"on {host.name}"))
    base = [NGINX, "-c", str(conf), "-p", str(ndir)]
    host.nginx_conf = str(conf)
    host.http_config_test_cmd = shlex.join([*base, "-t"])
    host.http_restart_cmd = shlex.join([*base, "-s", "reload"])
    check = _run([*host.enter(), *base, "-t"], check=False)
    if check.returncode != 0:
        raise RuntimeError(f"nginx config of {host.name} does not pass its config test:\n{check.stderr}")
    daemon = Daemon(
        name="nginx",
        netns=host.netns,
        argv=[*base, "-e", str(ndir / "error.log")],
        log=ndir / "nginx.stdout",
        ready=lambda: _tcp_ready(host.address, HTTP_PORT),
        enter=host.enter,
        stop_signal=signal.SIGQUIT,
        extra_logs=(ndir / "error.log",),
    )
    host.daemons["nginx"] = daemon
    daemon.start()


def _start_mariadb(host: NetnsHost, grant_pattern: str) -> None:
    mdir = _mkdir(host.dir / "mariadb")
    shutil.chown(mdir, MYSQL_USER, MYSQL_USER)
    datadir, sock, log = mdir / "data", str(mdir / "mysqld.sock"), mdir / "error.log"
    engine = ["--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M"]
    install = _run(
        [
            MARIADB_INSTALL_DB,
            "--no-defaults",
            f"--user={MYSQL_USER}",
            f"--datadir={datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
            *engine,
        ],
        check=False,
        timeout=120,
    )
    if install.returncode != 0:
        raise RuntimeError(f"mariadb-install-db for {host.name} failed:\n{install.stdout[-3000:]}{install.stderr}")
    host.db_port, host.db_socket = DB_PORT, sock
    daemon = Daemon(
        name="mariadb",
        netns=host.netns,
        argv=[
            MARIADBD,
            "--no-defaults",
            f"--user={MYSQL_USER}",
            f"--datadir={datadir}",
            f"--bind-address={host.address}",
            f"--port={DB_PORT}",
            f"--socket={sock}",
            f"--pid-file={mdir / 'mysqld.pid'}",
            f"--log-error={log}",
            "--skip-log-bin",
            "--skip-name-resolve",
            "--max-connections=200",
            *engine,
        ],
        log=mdir / "mariadbd.stdout",
        ready=lambda: _unix_ready(sock) and _tcp_ready(host.address, DB_PORT),
        enter=host.enter,
        extra_logs=(log,),
    )
    host.daemons["mariadb"] = daemon
    daemon.start(timeout=60)
    host.db_user, host.db_password = DB_ADMIN, "S3cret-" + secrets.token_hex(8)
    with host.root_connection() as conn, conn.cursor() as cur:
        for where in (grant_pattern, "localhost", "127.0.0.1"):
            cur.execute("CREATE USER %s@%s IDENTIFIED BY %s", (DB_ADMIN, where, host.db_password))
            cur.execute("GRANT ALL PRIVILEGES ON *.* TO %s@%s WITH GRANT OPTION", (DB_ADMIN, where))


# -- session bookkeeping -------------------------------------------------------------------------------------
def _require() -> None:
    if os.geteuid() != 0:
        pytest.fail("the test hosts need root (network namespaces, daemons): run the tests as root")
    for binary in (SSHD, NGINX, PHP_FPM, MARIADBD):
        if not os.access(binary, os.X_OK):
            pytest.fail(f"{binary} is not installed: run scripts/setup.sh")
    if _ip("netns", "list", check=False).returncode != 0:
        pytest.fail("`ip netns` does not work here: the test hosts need network namespaces (root, iproute2)")


def _owner_alive(tag: str) -> bool:
    try:
        owner = json.loads((TMP / f"{BASE_PREFIX}{tag}" / "owner.json").read_text())
        return _start_time(int(owner["pid"])) == owner["start"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _netns_names() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list", check=False).stdout.splitlines() if line.strip()]


def _link_names() -> list[str]:
    try:
        links = json.loads(_ip("-j", "link", "show", check=False).stdout or "[]")
    except ValueError:
        return []
    return [link["ifname"] for link in links if "ifname" in link]


def _tags_present() -> set[str]:
    tags = {m.group(1) for n in _netns_names() if (m := _NETNS_RE.match(n))}
    tags |= {m.group(1) for n in _link_names() if (m := _LINK_RE.match(n))}
    tags |= {m.group(1) for p in TMP.glob(f"{BASE_PREFIX}*") if (m := _BASE_RE.match(p.name))}
    return tags


def _cleanup_tag(tag: str) -> None:
    """Remove everything of session ``tag``: processes in its namespaces, namespaces, links, tree."""
    for netns in _netns_names():
        if (m := _NETNS_RE.match(netns)) and m.group(1) == tag:
            _kill_all(netns)
            _ip("netns", "del", netns, check=False)
    for record in (TMP / f"{BASE_PREFIX}{tag}").glob("*/holder.json"):  # when the netns is gone already
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            holder = json.loads(record.read_text())
            pid = int(holder["pid"])
            if holder["start"] is not None and _start_time(pid) == holder["start"]:
                _kill_mount_namespace(os.readlink(f"/proc/{pid}/ns/mnt"))
    for link in _link_names():
        if (m := _LINK_RE.match(link)) and m.group(1) == tag:
            _ip("link", "del", link, check=False)
    shutil.rmtree(TMP / f"{BASE_PREFIX}{tag}", ignore_errors=True)


def cleanup_stale() -> list[str]:
    """Remove the namespaces, links and trees of sessions whose owner process is gone; returns their tags."""
    stale = sorted(t for t in _tags_present() if not _owner_alive(t))
    for tag in stale:
        _cleanup_tag(tag)
    return stale


def _free_tag() -> str:
    present = _tags_present()
    while True:
        tag = secrets.token_hex(2)
        if tag not in present:
            return tag


def _free_subnet() -> ipaddress.IPv4Network:
    used: set[ipaddress.IPv4Network] = set()
    try:
        addrs = json.loads(_ip("-j", "-4", "addr", "show", check=False).stdout or "[]")
    except ValueError:
        addrs = []
    for link in addrs:
        for a in link.get("addr_info", []):
            used.add(ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False))
    try:
        routes = json.loads(_ip("-j", "-4", "route", "show", "table", "all", check=False).stdout or "[]")
    except ValueError:
        routes = []
    for route in routes:  # e.g. a VPN's 10.231.0.0/16 (the default route and host routes are not in the way)
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(route.get("dst", "default"), strict=False)
            if 16 <= net.prefixlen < 32:
                used.add(net)
    candidates = list(range(1, 255))
    secrets.SystemRandom().shuffle(candidates)
    for n in candidates:
        net = ipaddress.ip_network(f"{SUBNET_PREFIX}.{n}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise RuntimeError(f"no free {SUBNET_PREFIX}.N.0/24 for the test hosts")


# -- helpers for tests ---------------------------------------------------------------------------------------
def run_in(
    host: NetnsHost,
    argv: Sequence[str],
    *,
    check: bool = True,
    input: str | bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    text: bool = True,
    cwd: str | None = None,
) -> subprocess.CompletedProcess:
    """Run ``argv`` as a process of ``host`` (its network, mount and UTS namespaces: it sees the host's view
    of the shared path), as root, capturing output. ``cwd`` is a directory of the host's view; by default the
    caller's working directory, or ``/`` when that is under the shared path (the host sees other files there)."""
    if cwd is None:
        here = Path.cwd()
        cwd = "/" if here.is_relative_to(host.shared) else str(here)
    result = subprocess.run(
        [*host.enter(cwd), *argv],
        input=input,
        capture_output=True,
        text=text,
        env=None if env is None else {**os.environ, **env},
        timeout=timeout,
        stdin=subprocess.DEVNULL if input is None else None,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"in {host.name}: {shlex.join(argv)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


def http_get(host: NetnsHost, hostname_header: str, path: str = "/", *, timeout: float = 5.0) -> httpx.Response:
    """GET ``path`` from ``host``'s nginx (its address, from the root namespace) with ``Host: hostname_header``."""
    if host.http_port is None:
        raise ValueError(f"{host.name} has no web server")
    with httpx.Client(trust_env=False, timeout=timeout, follow_redirects=False) as client:
        return client.get(host.url + path, headers={"Host": hostname_header})


def wait_for_http(
    host: NetnsHost,
    hostname_header: str,
    path: str = "/",
    *,
    status: int | None = None,
    text: str | None = None,
    timeout: float = 10.0,
) -> httpx.Response:
    """:func:`http_get` until the answer has ``status`` (and contains ``text``): reloads are asynchronous."""
    deadline = time.monotonic() + timeout
    last: httpx.Response | Exception | None = None
    while True:
        try:
            last = http_get(host, hostname_header, path)
            if (status is None or last.status_code == status) and (text is None or text in last.text):
                return last
        except httpx.HTTPError as e:
            last = e
        if time.monotonic() >= deadline:
            seen = f"{last.status_code} {last.text[:300]!r}" if isinstance(last, httpx.Response) else last
            raise AssertionError(
                f"{host.name}: GET {path} Host: {hostname_header} never answered status={status} text={text!r}; "
                f"last: {seen}\n{host.diagnostics()}"
            )
        time.sleep(0.05)


def stop_sshd(host: NetnsHost, *, drop_sessions: bool = True) -> None:
    """Stop ``host``'s sshd: new connections are refused. With ``drop_sessions`` (default) the running
    sessions are killed too, so established connections (and commands running over them) drop at once."""
    host.daemons["sshd"].stop()
    if drop_sessions:
        for pid in netns_pids(host.netns):
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except OSError:
                continue
            if os.path.basename(exe) == "sshd":  # sshd session processes (children of the stopped master)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def start_sshd(host: NetnsHost) -> None:
    """Start ``host``'s sshd again (same config and host key); returns once it serves."""
    host.daemons["sshd"].start()


def link_down(host: NetnsHost) -> None:
    """Cut ``host`` off the network (its veth on the bridge goes down): connections to it time out, running
    ones hang, and it cannot reach the master or the other hosts. Its daemons keep running."""
    _ip("link", "set", host.veth, "down")


def link_up(host: NetnsHost, *, timeout: float = 10.0) -> None:
    """Reconnect ``host``; returns once its sshd (when running) is reachable again from the root namespace."""
    _ip("link", "set", host.veth, "up")
    sshd = host.daemons.get("sshd")
    if sshd is None or not sshd.running():
        return
    deadline = time.monotonic() + timeout
    while not _tcp_ready(host.address, host.ssh_port, b"SSH-"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{host.name} ({host.address}) not reachable {timeout} s after link_up")
        time.sleep(0.05)


# -- fixtures ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def host_network() -> Iterator[HostNetwork]:
    net = HostNetwork.create()
    try:
        yield net
    finally:
        net.close()


@pytest.fixture(scope="session")
def web1_host(host_network: HostNetwork) -> NetnsHost:
    return host_network.web_host("web1")


@pytest.fixture(scope="session")
def web2_host(host_network: HostNetwork) -> NetnsHost:
    return host_network.web_host("web2")


@pytest.fixture(scope="session")
def db1_host(host_network: HostNetwork) -> NetnsHost:
    return host_network.db_host("db1")


# -- by hand -------------------------------------------------------------------------------------------------
def _main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "list"
    if cmd == "list":
        for tag in sorted(_tags_present()):
            state = "live" if _owner_alive(tag) else "stale"
            names = [n for n in _netns_names() if (m := _NETNS_RE.match(n)) and m.group(1) == tag]
            print(f"{tag} {state}: {' '.join(names) or '(no namespaces)'}")
        return 0
    if cmd == "cleanup":
        with _machine_lock():
            print("removed:", " ".join(cleanup_stale()) or "nothing")
        return 0
    if cmd == "up":
        started = time.monotonic()
        net = HostNetwork.create()
        try:
            hosts = net.start_hosts(web=["web1"], db=["db1"])
            print(f"started in {time.monotonic() - started:.1f} s (Ctrl-C stops)")
            for host in hosts.values():
                fields = {k: v for k, v in host.server_fields().items() if k not in ("ssh_private_key",)}
                print(f"{host.name} netns={host.netns} dir={host.dir} holder={host.holder_pid}\n  {json.dumps(fields)}")
            print(f"shared path: {net.shared} (master's aegir_root {net.aegir_root})")
            print(f"client key: {net._client_key}")
            with contextlib.suppress(KeyboardInterrupt):
                signal.pause()
        finally:
            net.close()
        return 0
    print("usage: python -m tests.support.hosts list|cleanup|up", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
