"""A real OpenSSH server for tests (pytest plugin: ``pytest_plugins = ["tests.support.sshd"]``).

``sshd`` (session scope) runs ``/usr/sbin/sshd -D -e`` on 127.0.0.1 on a free port with its own host key and an
authorized client key for the current user; ``ssh_transport`` gives a connected ``SSHTransport`` to it.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aegir.transport.ssh import SSHTransport

SSHD = "/usr/sbin/sshd"
SFTP_SERVER_CANDIDATES = (
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/libexec/sftp-server",
)


@dataclass(frozen=True)
class SSHServer:
    host: str
    port: int
    user: str
    client_private_key: str
    host_public_key: str
    host_key_path: str
    client_key_path: str
    log_path: str

    def transport(self, **kwargs) -> SSHTransport:
        opts = {
            "port": self.port,
            "user": self.user,
            "private_key": self.client_private_key,
            "host_key": self.host_public_key,
            "connect_timeout": 5.0,
        }
        opts.update(kwargs)
        return SSHTransport(self.host, **opts)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )


def _wait_for_port(proc: subprocess.Popen, port: int, log: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited with code {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.settimeout(2)
                if s.recv(4).startswith(b"SSH-"):  # banner seen: sshd is serving
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"sshd did not accept connections on port {port} within {timeout} s")


def start_sshd(workdir: Path) -> tuple[subprocess.Popen, SSHServer]:
    if not os.path.exists(SSHD):
        raise RuntimeError(
            f"{SSHD} not found: the SSH transport tests need a real OpenSSH server. Install it with "
            "`apt-get install -y openssh-server` (Debian/Ubuntu) or `dnf install -y openssh-server` (Fedora/RHEL)"
        )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation directory
    workdir.mkdir(parents=True, exist_ok=True)
    host_key = workdir / "ssh_host_ed25519_key"
    client_key = workdir / "client_ed25519"
    _keygen(host_key)
    _keygen(client_key)
    authorized = workdir / "authorized_keys"
    authorized.write_text((workdir / "client_ed25519.pub").read_text())
    authorized.chmod(0o600)
    sftp = next((p for p in SFTP_SERVER_CANDIDATES if os.path.exists(p)), "internal-sftp")
    user = pwd.getpwuid(os.getuid()).pw_name
    log = workdir / "sshd.log"
    last_error: Exception | None = None
    for _attempt in range(3):  # a free port may be taken between probing and binding
        port = _free_port()
        config = workdir / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {workdir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "StrictModes no",
                    "UsePAM no",
                    "UseDNS no",
                    "PrintMotd no",
                    "MaxStartups 100",
                    "MaxSessions 100",
                    "LogLevel INFO",
                    f"Subsystem sftp {sftp}",
                    "",
                ]
            )
        )
        with open(log, "ab") as logf:
            proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=logf, stderr=logf
            )
        try:
            _wait_for_port(proc, port, log)
        except RuntimeError as e:
            last_error = e
            stop_sshd(proc)
            continue
        server = SSHServer(
            host="127.0.0.1",
            port=port,
            user=user,
            client_private_key=client_key.read_text(),
            host_public_key=" ".join((workdir / "ssh_host_ed25519_key.pub").read_text().split()[:2]),
            host_key_path=str(host_key),
            client_key_path=str(client_key),
            log_path=str(log),
        )
        return proc, server
    raise RuntimeError(f"could not start sshd: {last_error}")


def stop_sshd(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    proc, server = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        stop_sshd(proc)


@pytest.fixture
def ssh_transport(sshd: SSHServer) -> Iterator[SSHTransport]:
    t = sshd.transport()
    try:
        yield t
    finally:
        t.close()
