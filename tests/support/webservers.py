"""Real, private web server instances for integration tests: php-fpm, nginx, apache.

Each fixture starts its own process tree on 127.0.0.1 (a free port or a unix socket) with everything —
configuration, pid file, logs, sockets, temp dirs — in a temp directory, and stops it (and waits for it) at
teardown. The system instances and their files are never touched. The master processes run as root (as
the system ones do) and the workers as ``www-data``, so temp dirs are world-traversable (0755).

Register with ``pytest_plugins = ["tests.support.webservers"]`` (or ``-p tests.support.webservers``).

``nginx_server`` / ``apache_server`` yield a :class:`WebServer`: its ``aegir_root`` is a fresh per-session
directory whose ``config/nginx*.conf`` / ``config/apache*.conf`` the instance includes (inside ``http {}``
for nginx), exactly like Debian's ``/etc/nginx/conf.d/aegir.conf`` -> ``/var/aegir/config/nginx.conf``.
The fixture's own server (the OS default site) comes first, as Debian's default site is the default server of
its port: an unknown host gets its 410 until an Aegir server conf claims the port's default (so tests can tell
the fixture's answer from the Aegir catch-all 404).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

PHP_FPM = "/usr/sbin/php-fpm8.2"
NGINX = "/usr/sbin/nginx"
APACHE = "/usr/sbin/apache2"
APACHE_MODULES = "/usr/lib/apache2/modules"
NGINX_ETC = "/etc/nginx"
WEB_USER = "www-data"
STARTUP_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0


# -- helpers ------------------------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port free on all interfaces (nginx's Aegir catch-all listens on ``*:<port>``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def make_tmpdir(prefix: str) -> Path:
    """A temp dir the web workers (www-data) can traverse."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def _tail(path: Path, limit: int = 8000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:]


def _tcp_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _unix_ready(path: str) -> bool:
    if not os.path.exists(path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        try:
            s.connect(path)
            return True
        except OSError:
            return False


@dataclass
class _Process:
    name: str
    argv: list[str]
    tmp: Path
    logs: list[Path]
    stop_signal: int = signal.SIGTERM
    proc: subprocess.Popen | None = None

    def start(self, ready: Callable[[], bool]) -> None:
        out = self.tmp / f"{self.name}.stdout"
        self.logs = [out, *self.logs]
        with open(out, "wb") as f:
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.tmp,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._fail(f"exited with code {self.proc.returncode} during startup")
            if ready():
                return
            time.sleep(0.05)
        self.stop()
        self._fail(f"not ready after {STARTUP_TIMEOUT} s")

    def diagnostics(self) -> str:
        return "\n".join(f"--- {p} ---\n{_tail(p)}" for p in self.logs if p.exists())

    def _fail(self, why: str) -> None:
        raise RuntimeError(f"{self.name} ({shlex.join(self.argv)}) {why}\n{self.diagnostics()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)


@dataclass
class PhpFpm:
    socket: str
    tmp: Path
    error_log: Path
    process: _Process = field(repr=False)


@dataclass
class WebServer:
    """A running private web server; ``server_fields()`` are the ServerContext properties that target it."""

    kind: str  # "nginx" | "apache"
    port: int
    tmp: Path
    aegir_root: str
    conf_path: str
    config_test_cmd: str
    restart_cmd: str
    php_fpm_socket: str
    error_log: Path
    process: _Process = field(repr=False)

    def server_fields(self) -> dict[str, Any]:
        return {
            "http_service_type": self.kind,
            "http_port": self.port,
            "http_restart_cmd": self.restart_cmd,
            "http_config_test_cmd": self.config_test_cmd,
            "aegir_root": self.aegir_root,
            "php_fpm_socket": self.php_fpm_socket,
            "web_group": WEB_USER,
        }

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reload_done(self) -> bool:
        """nginx answers from one configuration only: its master has exactly one worker (the config's
        ``worker_processes 1``) and none of an earlier configuration still shutting down. A reload is
        asynchronous; under load an old worker can still accept a connection after the new one answered."""
        if self.kind != "nginx" or self.process.proc is None:
            return True
        master, workers = self.process.proc.pid, 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                if b"shutting down" in cmdline:
                    return False
                workers += 1
        return workers == 1

    def request(self, host: str, path: str = "/") -> httpx.Response:
        with httpx.Client(trust_env=False, timeout=5.0, follow_redirects=False) as client:
            return client.get(self.url + path, headers={"Host": host})

    def wait_for(
        self,
        host: str,
        path: str = "/",
        *,
        status: int | None = None,
        text: str | None = None,
        timeout: float = 10.0,
    ) -> httpx.Response:
        """GET until the answer has ``status`` (and contains ``text``): a reload is asynchronous (old workers
        may answer for a moment). Returns the matching response or fails with the last one seen."""
        deadline = time.monotonic() + timeout
        last: httpx.Response | Exception | None = None
        while True:
            try:
                last = self.request(host, path)
                if (status is None or last.status_code == status) and (text is None or text in last.text):
                    return last
            except httpx.HTTPError as e:
                last = e
            if time.monotonic() >= deadline:
                seen = f"{last.status_code} {last.text[:300]!r}" if isinstance(last, httpx.Response) else last
                raise AssertionError(
                    f"{self.kind}: GET {path} Host: {host} never answered status={status} text={text!r}; "
                    f"last: {seen}\n{self.process.diagnostics()}"
                )
            time.sleep(0.05)


def _serve(
    kind: str,
    base: list[str],
    reload_args: list[str],
    proc: _Process,
    port: int,
    tmp: Path,
    aegir_root: Path,
    conf: Path,
    php_fpm_socket: str,
) -> Iterator[WebServer]:
    """Config-test, start, yield and always stop one private web server instance."""
    try:
        check = subprocess.run([*base, "-t"], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"{kind} fixture config does not pass its config test:\n{check.stderr}")
        proc.start(lambda: _tcp_ready(port))
        yield WebServer(
            kind=kind,
            port=port,
            tmp=tmp,
            aegir_root=str(aegir_root),
            conf_path=str(conf),
            config_test_cmd=shlex.join([*base, "-t"]),
            restart_cmd=shlex.join([*base, *reload_args]),
            php_fpm_socket=php_fpm_socket,
            error_log=tmp / "error.log",
            process=proc,
        )
    finally:
        proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(aegir_root, ignore_errors=True)


# -- php-fpm ------------------------------------------------------------------------------------------------
PHP_FPM_CONF = """\
[global]
pid = {tmp}/php-fpm.pid
error_log = {tmp}/php-fpm.log
daemonize = no

[aegir-test]
user = {user}
group = {user}
listen = {socket}
listen.owner = {user}
listen.group = {user}
listen.mode = 0666
pm = static
pm.max_children = 4
catch_workers_output = yes
"""


@contextlib.contextmanager
def run_php_fpm() -> Iterator[PhpFpm]:
    tmp = make_tmpdir("aegir-test-php-fpm-")
    sock = str(tmp / "php-fpm.sock")
    conf = tmp / "php-fpm.conf"
    conf.write_text(PHP_FPM_CONF.format(tmp=tmp, socket=sock, user=WEB_USER))
    proc = _Process(
        "php-fpm",
        [PHP_FPM, "--nodaemonize", "--fpm-config", str(conf)],
        tmp,
        [tmp / "php-fpm.log"],
        stop_signal=signal.SIGQUIT,
    )
    try:
        proc.start(lambda: _unix_ready(sock))
        yield PhpFpm(socket=sock, tmp=tmp, error_log=tmp / "php-fpm.log", process=proc)
    finally:
        proc.stop()
        shutil.rmtree(tmp, ignore_errors=True)


# -- nginx --------------------------------------------------------------------------------------------------
NGINX_CONF = """\
user {user};
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;

events {{
    worker_connections 256;
}}

http {{
    include mime.types;
    default_type application/octet-stream;
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/temp/body;
    fastcgi_temp_path {tmp}/temp/fastcgi;
    proxy_temp_path {tmp}/temp/proxy;
    scgi_temp_path {tmp}/temp/scgi;
    uwsgi_temp_path {tmp}/temp/uwsgi;
    server_names_hash_bucket_size 128;

    # The OS's own default site, as Debian's sites-enabled/default is (issue 16, finding 2): listed first,
    # so the default server of the port unless Aegir's catch-all claims it (default_server). Before an Aegir
    # server conf exists, and whenever the catch-all does not win, an unknown host name gets its 410.
    server {{
        listen *:{port};
        server_name fixture.invalid;
        return 410 "nginx {who}: no Aegir server conf\\n";
    }}

    # What Debian's /etc/nginx/conf.d/aegir.conf does (a glob: passes nginx -t before Aegir wrote it).
    include {aegir_root}/config/nginx*.conf;
}}
"""


@contextlib.contextmanager
def run_nginx(php_fpm_socket: str) -> Iterator[WebServer]:
    tmp = make_tmpdir("aegir-test-nginx-")
    aegir_root = make_tmpdir("aegir-test-nginx-root-")
    (tmp / "temp").mkdir()
    for name in ("mime.types", "fastcgi_params", "fastcgi.conf"):  # so `include fastcgi_params;` works
        shutil.copy(os.path.join(NGINX_ETC, name), tmp / name)
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, aegir_root=aegir_root, port=port, user=WEB_USER, who="fixture"))
    base = [NGINX, "-c", str(conf), "-p", str(tmp)]
    proc = _Process("nginx", [*base, "-e", str(tmp / "error.log")], tmp, [tmp / "error.log"], signal.SIGQUIT)
    yield from _serve("nginx", base, ["-s", "reload"], proc, port, tmp, aegir_root, conf, php_fpm_socket)


# -- apache -------------------------------------------------------------------------------------------------
APACHE_MODULE_LIST = (
    "mpm_event",
    "authz_core",
    "authz_host",
    "access_compat",
    "alias",
    "dir",
    "env",
    "headers",
    "mime",
    "rewrite",
    "setenvif",
    "proxy",
    "proxy_fcgi",
)

APACHE_CONF = """\
ServerRoot /etc/apache2
DefaultRuntimeDir {tmp}/run
PidFile {tmp}/apache2.pid
Mutex file:{tmp}/run default
ErrorLog {tmp}/error.log
LogLevel warn
User {user}
Group {user}
ServerName 127.0.0.1
Listen 127.0.0.1:{port}

{load_modules}

StartServers 1
ServerLimit 2
ThreadLimit 16
ThreadsPerChild 16
MinSpareThreads 16
MaxSpareThreads 32
MaxRequestWorkers 32
GracefulShutdownTimeout 3

TypesConfig /etc/mime.types
DirectoryIndex index.php index.html
LogFormat "%v %h %t \\"%r\\" %>s %b" vcommon
CustomLog {tmp}/access.log vcommon

# Answers (410) until the Aegir catch-all vhost (the default for the port) exists.
DocumentRoot {tmp}/htdocs
RewriteEngine on
RewriteRule ^ - [R=410,L]
ErrorDocument 410 "apache fixture: no Aegir server conf"
<Directory />
    Options FollowSymLinks
    AllowOverride None
    Require all denied
</Directory>
<Directory {tmp}/htdocs>
    Require all granted
</Directory>

# What Debian's /etc/apache2/conf-enabled/aegir.conf does.
IncludeOptional {aegir_root}/config/apache*.conf
"""


@contextlib.contextmanager
def run_apache(php_fpm_socket: str) -> Iterator[WebServer]:
    tmp = make_tmpdir("aegir-test-apache-")
    aegir_root = make_tmpdir("aegir-test-apache-root-")
    (tmp / "run").mkdir()
    # Reachable only through a vhost inheriting DocumentRoot, e.g. the Aegir catch-all (acme challenges).
    acme = tmp / "htdocs" / ".well-known" / "acme-challenge"
    acme.mkdir(parents=True)
    (acme / "fixture-token").write_text("acme-ok")
    (tmp / "htdocs" / "index.html").write_text("apache fixture htdocs")
    for p in (tmp / "htdocs", acme.parent, acme):
        p.chmod(0o755)
    port = free_port()
    load = "\n".join(f"LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so" for m in APACHE_MODULE_LIST)
    conf = tmp / "apache2.conf"
    conf.write_text(APACHE_CONF.format(tmp=tmp, aegir_root=aegir_root, port=port, user=WEB_USER, load_modules=load))
    base = [APACHE, "-f", str(conf)]
    proc = _Process("apache2", [*base, "-DFOREGROUND"], tmp, [tmp / "error.log"], signal.SIGTERM)
    yield from _serve("apache", base, ["-k", "graceful"], proc, port, tmp, aegir_root, conf, php_fpm_socket)


# -- fixtures -----------------------------------------------------------------------------------------------
def _require(binary: str) -> None:
    if not os.access(binary, os.X_OK):
        pytest.fail(f"{binary} is not installed: run scripts/setup.sh (installs nginx-light, apache2, php-fpm)")
    if os.geteuid() != 0:
        pytest.fail("the web server fixtures run their masters as root (workers as www-data): run the tests as root")


@pytest.fixture(scope="session")
def php_fpm() -> Iterator[PhpFpm]:
    _require(PHP_FPM)
    with run_php_fpm() as fpm:
        yield fpm


@pytest.fixture(scope="session")
def nginx_server(php_fpm: PhpFpm) -> Iterator[WebServer]:
    _require(NGINX)
    with run_nginx(php_fpm.socket) as server:
        yield server


@pytest.fixture(scope="session")
def apache_server(php_fpm: PhpFpm) -> Iterator[WebServer]:
    _require(APACHE)
    with run_apache(php_fpm.socket) as server:
        yield server
