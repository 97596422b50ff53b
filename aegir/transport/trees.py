"""Directory copies between this machine and a transport's machine, as a tar stream (no temp copies)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence

from .base import Transport, TransportError
from .childenv import child_env


def _local_tar(argv: list[str], **popen) -> subprocess.Popen:
    return subprocess.Popen(argv, stderr=subprocess.PIPE, env=child_env(), **popen)


def _finish(proc: subprocess.Popen, argv: list[str]) -> None:
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.wait() != 0:
        raise TransportError("local tar failed", command=argv, exit_code=proc.returncode, stderr=stderr)


def push_tree(transport: Transport, local: str, remote: str, excludes: Sequence[str] = ()) -> None:
    """Copy the contents of the local directory ``local`` into ``remote`` on the transport's machine."""
    if not os.path.isdir(local):
        raise TransportError(f"local directory {local} does not exist")
    argv = ["tar", "-C", local, "-cf", "-", *[f"--exclude={e}" for e in excludes], "."]
    proc = _local_tar(argv, stdout=subprocess.PIPE)
    try:
        transport.makedirs(remote, mode=0o755)
        transport.run(["tar", "-C", remote, "-xpf", "-"], stdin=proc.stdout)
    finally:
        if proc.stdout:
            proc.stdout.close()
        _finish(proc, argv)


def fetch_tree(transport: Transport, remote: str, local: str) -> None:
    """Copy the contents of ``remote`` on the transport's machine into the local directory ``local``."""
    os.makedirs(local, exist_ok=True)
    argv = ["tar", "-C", local, "-xpf", "-"]
    proc = _local_tar(argv, stdin=subprocess.PIPE)
    try:
        transport.run(["tar", "-C", remote, "-cf", "-", "."], stdout=proc.stdin)
    finally:
        if proc.stdin:
            proc.stdin.close()
        _finish(proc, argv)
