"""SSHTransport specifics against a real sshd: host-key checking, connection and authentication failures,
connection reuse and recovery, and that the private key never leaks into an error."""

from __future__ import annotations

import socket
import subprocess
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aegir.transport import (
    AuthenticationError,
    HostKeyError,
    TransportConnectionError,
    TransportError,
)
from aegir.transport.ssh import SSHTransport

pytestmark = pytest.mark.integration


def _keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, capture_output=True)
    return path


def _fingerprint(pub_or_key: Path) -> str:
    out = subprocess.run(["ssh-keygen", "-lf", str(pub_or_key)], check=True, capture_output=True, text=True)
    return out.stdout.split()[1]  # "256 SHA256:... comment (ED25519)"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once closed


def _leaks(e: BaseException, key_text: str) -> bool:
    """Whether any line of the key body shows up in the exception, its repr, or its formatted traceback."""
    rendered = str(e) + repr(e) + "".join(traceback.format_exception(e))
    body = [line for line in key_text.splitlines() if line and not line.startswith("-----")]
    return any(line in rendered for line in body)


def test_connects_with_pinned_host_key(ssh_transport, sshd):
    assert ssh_transport.host == sshd.host
    assert ssh_transport.run(["id", "-un"]).text.strip() == sshd.user


def test_one_connection_is_reused_then_closed(sshd):
    t = sshd.transport()
    # $SSH_CLIENT = "client-ip client-port server-port": same client port = same TCP connection
    first = t.run(["sh", "-c", 'echo "$SSH_CLIENT"']).text
    t.read_file("/etc/hostname")
    assert t.run(["sh", "-c", 'echo "$SSH_CLIENT"']).text == first
    t.close()
    assert t.run(["sh", "-c", 'echo "$SSH_CLIENT"']).text != first  # reconnected lazily after close()
    t.close()


def test_connects_lazily(sshd):
    t = SSHTransport("127.0.0.1", port=_closed_port(), private_key=sshd.client_private_key)  # no error yet
    with pytest.raises(TransportConnectionError):
        t.run(["true"])


def test_unknown_host_key_is_refused(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    t = sshd.transport(host_key=None, known_hosts=str(known))
    with pytest.raises(HostKeyError) as ei:
        t.run(["true"])
    msg = str(ei.value)
    assert f"{sshd.host}:{sshd.port}" in msg and "not known" in msg
    assert f"ssh-keyscan -p {sshd.port} {sshd.host}" in msg
    assert "--ssh_host_key=" in msg
    assert _fingerprint(Path(sshd.host_key_path)) in msg
    assert not ei.value.transient
    assert known.read_text() == ""  # never silently accepted, nothing written
    with pytest.raises(HostKeyError):  # still refused on the next try
        t.read_file("/etc/hostname")


def test_known_hosts_entry_without_port_does_not_match_a_non_22_port(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(f"{sshd.host} {sshd.host_public_key}\n")
    with pytest.raises(HostKeyError, match="not known"):
        sshd.transport(host_key=None, known_hosts=str(known)).run(["true"])


def test_known_hosts_file_with_port_entry(sshd, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(  # a broken line (bad base64) is skipped, as ssh does, not fatal for the whole file
        f"other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDummy\n[{sshd.host}]:{sshd.port} {sshd.host_public_key}\n"
    )
    t = sshd.transport(host_key=None, known_hosts=str(known))
    assert t.run(["echo", "ok"]).text == "ok\n"
    t.close()
    # hashed entries (HashKnownHosts yes) work as well
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    assert "|1|" in known.read_text()
    t = sshd.transport(host_key=None, known_hosts=str(known))
    assert t.run(["echo", "ok"]).text == "ok\n"
    t.close()


def test_changed_host_key_is_refused(sshd, tmp_path):
    other = _keygen(tmp_path / "other_host_key")
    other_line = " ".join(Path(f"{other}.pub").read_text().split()[:2])
    t = sshd.transport(host_key=other_line)
    with pytest.raises(HostKeyError) as ei:
        t.run(["true"])
    msg = str(ei.value)
    assert "changed" in msg.lower() and f"{sshd.host}:{sshd.port}" in msg
    assert _fingerprint(Path(f"{other}.pub")) in msg  # the expected one
    assert _fingerprint(Path(sshd.host_key_path)) in msg  # the one offered
    assert not ei.value.transient
    # the same through a known_hosts file
    known = tmp_path / "known_hosts"
    known.write_text(f"[{sshd.host}]:{sshd.port} {other_line}\n")
    with pytest.raises(HostKeyError, match="CHANGED"):
        sshd.transport(host_key=None, known_hosts=str(known)).run(["true"])


def test_invalid_host_key_line(sshd):
    with pytest.raises(HostKeyError, match="invalid SSH host key"):
        sshd.transport(host_key="not a key")


def test_unreachable_is_a_transient_connection_error(sshd):
    port = _closed_port()
    t = SSHTransport("127.0.0.1", port=port, private_key=sshd.client_private_key, connect_timeout=2)
    with pytest.raises(TransportConnectionError) as ei:
        t.run(["true"])
    assert ei.value.transient
    assert f"cannot reach 127.0.0.1:{port}" in str(ei.value)
    assert str(ei.value).startswith("[127.0.0.1] ") and ei.value.host == "127.0.0.1"
    with pytest.raises(TransportConnectionError):
        t.write_file("/tmp/x", "x")


def test_unresolvable_host_is_a_connection_error(sshd):
    t = SSHTransport("no-such-host.invalid", private_key=sshd.client_private_key, connect_timeout=2)
    with pytest.raises(TransportConnectionError, match="cannot reach no-such-host.invalid:22"):
        t.exists("/")


def test_wrong_client_key_is_an_authentication_error(sshd, tmp_path):
    wrong = _keygen(tmp_path / "wrong").read_text()
    t = sshd.transport(private_key=wrong)
    with pytest.raises(AuthenticationError) as ei:
        t.run(["true"])
    assert f"{sshd.user}@{sshd.host}:{sshd.port}" in str(ei.value)
    assert not ei.value.transient
    assert not _leaks(ei.value, wrong)


def test_no_key_at_all_is_an_authentication_error(sshd, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/id_* keys
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)  # no agent
    t = SSHTransport(sshd.host, port=sshd.port, user=sshd.user, host_key=sshd.host_public_key)
    with pytest.raises(AuthenticationError, match=f"{sshd.user}@{sshd.host}:{sshd.port}") as ei:
        t.run(["true"])
    assert not ei.value.transient


def test_concurrent_use_of_one_transport(ssh_transport, tmp_path):
    (tmp_path / "f").write_text("content")

    def work(i: int) -> tuple[str, bytes]:
        return ssh_transport.run(["echo", str(i)]).text, ssh_transport.read_file(str(tmp_path / "f"))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(16)))
    assert results == [(f"{i}\n", b"content") for i in range(16)]


def test_private_key_never_in_errors(sshd, tmp_path):
    key = sshd.client_private_key
    errors: list[BaseException] = []
    broken = key.replace("A", "B", 5)  # still key-shaped, not a valid key
    for bad in (broken, key[: len(key) // 2], "garbage " + key):
        with pytest.raises(AuthenticationError) as ei:
            SSHTransport(sshd.host, port=sshd.port, private_key=bad)
        assert ei.value.__context__ is None and ei.value.__cause__ is None
        errors.append(ei.value)
        assert not _leaks(ei.value, bad)
    # encrypted keys are refused with a clear reason
    enc = tmp_path / "enc"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "pass phrase", "-f", str(enc)], check=True)
    with pytest.raises(AuthenticationError, match="encrypted") as ei:
        SSHTransport(sshd.host, port=sshd.port, private_key=enc.read_text())
    assert not _leaks(ei.value, enc.read_text())
    t = sshd.transport()
    assert sshd.client_private_key not in repr(t) and "PRIVATE" not in repr(vars(t))
    for call in (
        lambda: t.run(["false"]),
        lambda: t.read_file("/nonexistent/file"),
        lambda: sshd.transport(host_key=None, known_hosts=str(tmp_path / "none")).run(["true"]),
        lambda: SSHTransport("127.0.0.1", port=_closed_port(), private_key=key).run(["true"]),
    ):
        with pytest.raises(TransportError) as ei:
            call()
        errors.append(ei.value)
    for e in errors:
        assert not _leaks(e, key)
    t.close()


def test_rsa_and_ecdsa_pem_keys_load(sshd, tmp_path):
    for kind, extra in (("rsa", ["-b", "2048", "-m", "PEM"]), ("ecdsa", ["-m", "PEM"]), ("ed25519", [])):
        path = tmp_path / kind
        subprocess.run(["ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-f", str(path)], check=True)
        t = sshd.transport(private_key=path.read_text())
        with pytest.raises(AuthenticationError):  # loads fine, just not authorized
            t.run(["true"])


def test_dropped_session_is_transient_and_recovers(sshd):
    t = sshd.transport()
    # kill the sshd process serving this connection (the command's parent, "sshd: user@notty")
    script = 'p=$PPID; case "$(tr "\\0" " " </proc/$p/cmdline)" in *@notty*) kill -9 "$p";; *) exit 99;; esac'
    with pytest.raises(TransportConnectionError) as ei:
        t.run(["sh", "-c", script + "; sleep 2"])
    assert ei.value.transient
    assert f"{sshd.host}:{sshd.port}" in str(ei.value)
    assert t.run(["echo", "back"]).text == "back\n"  # the next call reconnects
    t.close()


def test_sftp_errors_name_path_and_host(ssh_transport, sshd, tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(TransportError) as ei:
        ssh_transport.listdir(str(f))
    assert str(f) in str(ei.value) and f"{sshd.host}:{sshd.port}" in str(ei.value)
    assert ei.value.host == sshd.host
    assert not isinstance(ei.value, TransportConnectionError)
