"""The transport contract (DESIGN §4): one suite, run against LocalTransport and SSHTransport (a real sshd).

The SSH "remote" is this machine, so every effect is checked with plain local file-system calls.
"""

from __future__ import annotations

import contextlib
import grp
import io
import os
import re
import stat
import subprocess
import time
import uuid

import pytest

from aegir.transport import LocalTransport, SecretFile, Transport, TransportError
from aegir.transport.base import REDACTED

pytestmark = pytest.mark.integration

MB = 1 << 20


@pytest.fixture(params=["local", "ssh"])
def transport(request):
    if request.param == "local":
        t = LocalTransport()
        yield t
        t.close()
    else:
        yield request.getfixturevalue("ssh_transport")


def _group() -> tuple[str, int]:
    """A group to chgrp to: another existing group when we are root (so the change is visible), else ours."""
    if os.geteuid() == 0:
        for name in ("daemon", "adm", "users", "nogroup"):
            try:
                return name, grp.getgrnam(name).gr_gid
            except KeyError:
                continue
    g = grp.getgrgid(os.getgid())
    return g.gr_name, g.gr_gid


def _pattern(n: int) -> bytes:
    """n bytes that are not all alike, so a reordering or a lost chunk is noticed."""
    block = bytes(range(256)) * 4096
    return (block * (n // len(block) + 1))[:n]


def _process_alive(marker: str) -> bool:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        return True
            except OSError:
                pass
    return False


# -- run --------------------------------------------------------------------------------------------------
def test_implements_the_protocol(transport):
    assert isinstance(transport, Transport)
    assert transport.host


def test_argv_arrives_verbatim(transport, tmp_path):
    pwned = tmp_path / "pwned"
    args = [
        "a b",
        "it's",
        'say "hi"',
        "; touch " + str(pwned),
        f"$(touch {pwned})",
        f"`touch {pwned}`",
        "*",
        "~",
        "$HOME",
        "back\\slash",
        "x\ny",
        "",
        "-n",
        "FOO=bar",
        "&& | > <",
        "ünïcødé",
    ]
    res = transport.run(["printf", "%s\\0", *args])
    assert res.stdout.split(b"\0")[:-1] == [a.encode() for a in args]
    assert res.exit_code == 0
    assert not pwned.exists()
    # argv[0] is not interpreted either (no assignment word, no shell keyword)
    with pytest.raises(TransportError):
        transport.run(["FOO=bar", "true"], check=False)


def test_stdin_bytes(transport):
    assert transport.run(["cat"], stdin=b"hello\x00world\n").stdout == b"hello\x00world\n"
    assert transport.run(["cat"]).stdout == b""  # no stdin: empty, never the caller's terminal


def test_stdin_stream(transport, tmp_path):
    data = _pattern(3 * MB + 17)
    src = tmp_path / "in.bin"
    src.write_bytes(data)
    with open(src, "rb") as f:
        res = transport.run(["sha256sum"], stdin=f)
    expected = subprocess.run(["sha256sum"], input=data, capture_output=True, check=True).stdout
    assert res.stdout == expected
    assert transport.run(["wc", "-c"], stdin=io.BytesIO(data)).text.strip() == str(len(data))


def test_stdout_streamed_to_file(transport, tmp_path):
    n = 6 * MB + 5
    out = tmp_path / "out.bin"
    with open(out, "wb") as f:
        res = transport.run(["head", "-c", str(n), "/dev/urandom"], stdout=f)
    assert res.stdout == b""
    assert out.stat().st_size == n


def test_large_stdout_and_stderr_both_ways_without_deadlock(transport):
    data = _pattern(5 * MB + 3)
    # tee writes every chunk to stdout and to stderr while still reading stdin
    res = transport.run(["sh", "-c", "tee /dev/stderr"], stdin=data, timeout=60)
    assert res.stdout == data
    assert MB <= len(res.stderr) <= 2 * MB  # captured stderr is capped
    assert data.startswith(res.stderr)
    # a command that floods stderr before reading any stdin
    res = transport.run(["sh", "-c", "head -c 4000000 /dev/zero >&2; cat"], stdin=data, timeout=60)
    assert res.stdout == data


def test_broken_stdout_sink_does_not_hang(transport):
    """A sink that fails (e.g. a local tar that died) must not leave the command blocked on a full pipe."""
    reader = subprocess.Popen(["head", "-c", "10"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        res = transport.run(["head", "-c", str(24 * MB), "/dev/zero"], stdout=reader.stdin, timeout=30)
    finally:
        with contextlib.suppress(BrokenPipeError):
            reader.stdin.close()
        reader.wait()
    assert res.exit_code == 0


def test_nonzero_exit_raises_with_code_and_stderr(transport):
    with pytest.raises(TransportError) as ei:
        transport.run(["sh", "-c", "echo partial; echo 'it broke' >&2; exit 3"])
    e = ei.value
    assert e.exit_code == 3
    assert "it broke" in e.stderr
    assert e.command == ["sh", "-c", "echo partial; echo 'it broke' >&2; exit 3"]
    assert "exit code 3" in str(e) and "it broke" in str(e)
    assert not e.transient


def test_check_false_returns_code(transport):
    res = transport.run(["sh", "-c", "echo out; echo err >&2; exit 7"], check=False)
    assert (res.exit_code, res.stdout, res.stderr) == (7, b"out\n", b"err\n")
    assert res.text == "out\n"


def test_command_killed_by_a_signal_is_a_failure_not_a_connection_error(transport):
    res = transport.run(["sh", "-c", "kill -9 $$"], check=False)
    assert res.exit_code != 0
    with pytest.raises(TransportError) as ei:
        transport.run(["sh", "-c", "kill -9 $$"])
    assert not ei.value.transient
    assert transport.run(["echo", "still fine"]).text == "still fine\n"


def test_command_not_found_raises(transport):
    with pytest.raises(TransportError):
        transport.run(["aegir-no-such-command-xyz"], check=False)


def test_cwd(transport, tmp_path):
    d = tmp_path / "work dir; $(x)"
    d.mkdir()
    assert transport.run(["pwd"], cwd=str(d)).text == f"{d}\n"
    with pytest.raises(TransportError):
        transport.run(["pwd"], cwd=str(tmp_path / "missing"))


def test_timeout_kills_the_command(transport):
    marker = f"{int(time.time() * 1000) % 1000000 + 30}.{uuid.uuid4().int % 10**6}"
    t0 = time.monotonic()
    with pytest.raises(TransportError, match="timed out"):
        transport.run(["sleep", marker], timeout=1)
    assert time.monotonic() - t0 < 8
    deadline = time.monotonic() + 5
    while _process_alive(f"sleep\0{marker}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _process_alive(f"sleep\0{marker}")


# -- secrets ----------------------------------------------------------------------------------------------
SCAN = 'cat /proc/[0-9]*/cmdline /proc/[0-9]*/environ 2>/dev/null; printf "\\nARG:%s\\n" "$1"'


def test_secret_file_reaches_child_as_fd_and_nowhere_else(transport, tmp_path):
    secret = f"[client]\npassword=s3cr3t-{uuid.uuid4().hex}\n\n"
    out = tmp_path / "got"
    res = transport.run(["sh", "-c", 'cat "$1" > "$2"; ' + SCAN, "sh", SecretFile(secret), str(out)])
    assert out.read_text() == secret  # content exact, trailing newlines included
    assert re.search(r"\nARG:/dev/fd/\d+\n$", res.text)
    hidden = secret.split("=")[1].strip()
    assert hidden.encode() not in res.stdout  # in no process's argv or environment, while the child ran
    assert hidden.encode() not in res.stderr


def test_secret_file_prefix_several_secrets_and_stdin(transport, tmp_path):
    a, b = f"first-{uuid.uuid4().hex}", f"second-{uuid.uuid4().hex}\n"
    script = 'cat "$1"; echo "|$2|"; cat "${2#--file=}"; echo "|"; cat'
    res = transport.run(
        ["sh", "-c", script, "sh", SecretFile(a), SecretFile(b, prefix="--file=")], stdin=b"the real stdin\n"
    )
    expected = re.escape(a) + r"\|--file=/dev/fd/\d+\|\n" + re.escape(b) + r"\|\nthe real stdin\n"
    assert re.fullmatch(expected, res.text)


def test_secret_redacted_in_errors(transport):
    password = f"hunter2-{uuid.uuid4().hex}"
    secret = SecretFile(f"password={password}\n", redact=(password,))
    with pytest.raises(TransportError) as ei:
        transport.run(["sh", "-c", 'cat "$1" >&2; echo "using $1" >&2; exit 4', "sh", secret])
    e = ei.value
    assert e.exit_code == 4
    assert password not in str(e) and password not in e.stderr and password not in repr(e.args)
    assert REDACTED in e.stderr
    assert e.command == ["sh", "-c", 'cat "$1" >&2; echo "using $1" >&2; exit 4', "sh", "/dev/fd/<secret>"]


# -- files ------------------------------------------------------------------------------------------------
def test_write_file_atomic_mode_group(transport, tmp_path):
    name, gid = _group()
    path = tmp_path / "settings.php"
    transport.write_file(str(path), "<?php // one\n", mode=0o640, group=name)
    st = path.stat()
    assert path.read_text() == "<?php // one\n"
    assert stat.S_IMODE(st.st_mode) == 0o640 and st.st_gid == gid
    inode = st.st_ino
    transport.write_file(str(path), b"\x00binary\xff", mode=0o600)
    assert path.read_bytes() == b"\x00binary\xff"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert os.listdir(tmp_path) == ["settings.php"]  # no temp file left behind
    transport.write_file(str(tmp_path / "empty"), b"")
    assert (tmp_path / "empty").read_bytes() == b""
    assert stat.S_IMODE((tmp_path / "empty").stat().st_mode) == 0o644


def test_write_file_errors(transport, tmp_path):
    with pytest.raises(TransportError, match="aegir-no-such-group"):
        transport.write_file(str(tmp_path / "f"), "x", group="aegir-no-such-group")
    assert os.listdir(tmp_path) == []
    with pytest.raises(TransportError, match=re.escape(str(tmp_path / "missing"))):
        transport.write_file(str(tmp_path / "missing" / "f"), "x")


def test_read_file(transport, tmp_path):
    data = _pattern(2 * MB + 1)
    (tmp_path / "f").write_bytes(data)
    assert transport.read_file(str(tmp_path / "f")) == data
    with pytest.raises(TransportError) as ei:
        transport.read_file(str(tmp_path / "missing"))
    assert str(tmp_path / "missing") in str(ei.value)
    assert transport.host in str(ei.value)


def test_makedirs(transport, tmp_path):
    name, gid = _group()
    leaf = tmp_path / "a" / "b" / "c"
    transport.makedirs(str(leaf), mode=0o750)
    assert leaf.is_dir() and stat.S_IMODE(leaf.stat().st_mode) == 0o750
    existing = tmp_path / "existing"
    existing.mkdir(mode=0o700)
    transport.makedirs(str(existing), mode=0o2775, group=name)
    assert stat.S_IMODE(existing.stat().st_mode) == 0o2775 and existing.stat().st_gid == gid
    transport.makedirs(str(existing), mode=0o755)  # idempotent, mode exact again
    assert stat.S_IMODE(existing.stat().st_mode) == 0o755
    (tmp_path / "file").write_text("x")
    with pytest.raises(TransportError):
        transport.makedirs(str(tmp_path / "file" / "sub"))
    with pytest.raises(TransportError):
        transport.makedirs(str(tmp_path / "file"))


def test_exists_is_dir(transport, tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "d").mkdir()
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    os.symlink(tmp_path / "d", tmp_path / "dirlink")
    assert transport.exists(str(tmp_path / "f")) and not transport.is_dir(str(tmp_path / "f"))
    assert transport.exists(str(tmp_path / "d")) and transport.is_dir(str(tmp_path / "d"))
    assert transport.exists(str(tmp_path / "dangling")) and not transport.is_dir(str(tmp_path / "dangling"))
    assert transport.is_dir(str(tmp_path / "dirlink"))
    assert not transport.exists(str(tmp_path / "missing")) and not transport.is_dir(str(tmp_path / "missing"))


def test_remove_file(transport, tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "target").write_text("keep")
    os.symlink(tmp_path / "target", tmp_path / "link")
    transport.remove_file(str(tmp_path / "f"))
    transport.remove_file(str(tmp_path / "link"))
    transport.remove_file(str(tmp_path / "missing"))
    assert sorted(os.listdir(tmp_path)) == ["target"]


def test_remove_tree(transport, tmp_path):
    root = tmp_path / "tree"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "f").write_text("x")
    (root / "ro").mkdir()
    (root / "ro" / "g").write_text("y")
    (root / "ro").chmod(0o500)
    transport.remove_tree(str(root))
    assert not root.exists()
    transport.remove_tree(str(root))  # missing is fine
    (tmp_path / "plain").write_text("x")
    transport.remove_tree(str(tmp_path / "plain"))
    assert os.listdir(tmp_path) == []


def test_symlink_create_and_replace(transport, tmp_path):
    link = tmp_path / "current"
    transport.symlink("/releases/1", str(link))
    assert os.readlink(link) == "/releases/1"
    transport.symlink("/releases/2", str(link))
    assert os.readlink(link) == "/releases/2"
    assert os.listdir(tmp_path) == ["current"]


def test_listdir(transport, tmp_path):
    for n in ("b", "a", ".hidden", "c d"):
        (tmp_path / n).write_text(n)
    (tmp_path / "sub").mkdir()
    assert transport.listdir(str(tmp_path)) == [".hidden", "a", "b", "c d", "sub"]
    with pytest.raises(TransportError):
        transport.listdir(str(tmp_path / "missing"))


def test_push_and_fetch_tree_round_trip(transport, tmp_path):
    src = tmp_path / "src"
    (src / "sites" / "default" / "files").mkdir(parents=True)
    (src / "cache" / "deep").mkdir(parents=True)
    (src / "sites" / "default" / "settings.php").write_text("<?php\n")
    (src / "sites" / "default" / "settings.php").chmod(0o440)
    (src / "sites" / "default" / "files" / "big.bin").write_bytes(_pattern(MB + 7))
    (src / "sites" / "default").chmod(0o550)
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    (src / "debug.log").write_text("noise")
    (src / "cache" / "deep" / "x").write_text("x")
    os.symlink("sites/default", src / "link")

    remote = tmp_path / "remote" / "platform"
    transport.push_tree(str(src), str(remote), excludes=["*.log", "./cache"])
    assert sorted(os.listdir(remote)) == ["link", "run.sh", "sites"]
    assert (remote / "sites" / "default" / "files" / "big.bin").read_bytes() == _pattern(MB + 7)
    assert stat.S_IMODE((remote / "sites" / "default" / "settings.php").stat().st_mode) == 0o440
    assert stat.S_IMODE((remote / "sites" / "default").stat().st_mode) == 0o550
    assert stat.S_IMODE((remote / "run.sh").stat().st_mode) == 0o755
    assert os.readlink(remote / "link") == "sites/default"

    back = tmp_path / "back"
    transport.fetch_tree(str(remote), str(back))
    assert sorted(os.listdir(back)) == ["link", "run.sh", "sites"]
    assert (back / "sites" / "default" / "settings.php").read_text() == "<?php\n"
    assert stat.S_IMODE((back / "sites" / "default" / "settings.php").stat().st_mode) == 0o440
    assert (back / "sites" / "default" / "files" / "big.bin").read_bytes() == _pattern(MB + 7)
    for d in (src, remote, back):  # let pytest clean up
        (d / "sites" / "default").chmod(0o755)


def test_tree_errors(transport, tmp_path):
    with pytest.raises(TransportError):
        transport.push_tree(str(tmp_path / "missing"), str(tmp_path / "remote"))
    with pytest.raises(TransportError):
        transport.fetch_tree(str(tmp_path / "missing-remote"), str(tmp_path / "back"))
