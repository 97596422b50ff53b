"""No child that is not a Prefect client inherits the API credential (DESIGN §11), for real: ``aegir backup``
and ``aegir migrate`` run as CLI subprocesses with ``PREFECT_API_AUTH_STRING`` in their environment (as a
flow run started by a worker or by ``aegir serve`` has it), while a sampler thread scans /proc every few ms
and reads the environment (/proc/PID/environ) of every drush, php, mysql/mysqldump, tar, gzip/zstd process
descending from the CLI."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.integration.helpers import AEGIR
from tests.integration.sites import Hosting, make_hosting
from tests.integration.test_backup_restore import retitle, titles
from tests.integration.test_install_site import install

pytestmark = pytest.mark.integration

TOOLS = {"mysqldump", "mysql", "mariadb-dump", "mariadb", "tar", "zstd", "gzip", "php"}
MARKER = "AEGIR_CHILD_ENV_PROBE"


@pytest.fixture(scope="module")
def hosting(prefect_api, nginx_server, db_admin) -> Iterator[Hosting]:
    from blocks.store import BlockStore

    yield from make_hosting(BlockStore(prefect_api.url, prefect_api.auth), nginx_server, db_admin, prefix="@server_env")


def kind_of(argv: list[str]) -> str | None:
    """drush (the stand-in runs as ``php …/drush``; real drush as ``php …/drush.php`` or a ``drush`` binary)
    before php; else a tool by argv[0]'s basename."""
    if any(os.path.basename(a) in ("drush", "drush.php") or a.endswith("/drush") for a in argv):
        return "drush"
    base = os.path.basename(argv[0]) if argv else ""
    return base if base in TOOLS else None


@dataclass(frozen=True)
class Sample:
    pid: int
    kind: str
    has_credential: bool
    prefect_vars: tuple[str, ...]
    argv0: str


class Sampler(threading.Thread):
    """Scans /proc until stopped and samples, once per (pid, kind), every process of a watched kind that
    descends from one of ``roots`` (the CLI processes), or carries the probe marker in its environment (in case
    its parent is already gone), or is in ``watch``. A process is classified when first seen; the unrelated
    ones are not read again (a sweep costs one listing of /proc and a few reads, so it can run every ms)."""

    def __init__(self, credential: str, marker: str) -> None:
        super().__init__(daemon=True)
        self.credential = credential.encode()
        self.marker = f"{MARKER}={marker}".encode()
        self.roots: set[int] = set()
        self.watch: set[int] = set()
        self.related: set[int] = set()
        self.unrelated: set[int] = {os.getpid()}
        self.samples: dict[tuple[int, str], Sample] = {}
        self.sweeps = 0
        self.error: BaseException | None = None
        self.stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self.stopped.is_set():
                self.sweep()
                self.sweeps += 1
                time.sleep(0.001)
        except BaseException as e:  # reported by the test
            self.error = e

    def stop(self) -> None:
        self.stopped.set()
        self.join(10)

    @staticmethod
    def _read(path: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:  # gone, or a zombie
            return None

    def _ppid(self, pid: int) -> int | None:
        stat = self._read(f"/proc/{pid}/stat")
        return None if not stat else int(stat[stat.rindex(b")") + 2 :].split()[1])

    def _descends(self, pid: int) -> bool:
        for _ in range(64):
            if pid in self.roots or pid in self.related:
                return True
            parent = self._ppid(pid)
            if parent is None or parent <= 1:
                return False
            pid = parent
        return False

    def _is_related(self, pid: int) -> bool:
        return self._descends(pid) or self.marker in (self._read(f"/proc/{pid}/environ") or b"").split(b"\0")

    def sweep(self) -> None:
        present: set[int] = set()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            present.add(pid)
            if pid in self.roots:
                continue
            if pid not in self.watch and pid not in self.related:
                if pid in self.unrelated:
                    continue
                if not self._is_related(pid):
                    self.unrelated.add(pid)
                    continue
                self.related.add(pid)
            self._sample(pid)
        self.related &= present
        self.unrelated &= present  # a recycled pid is looked at again

    def _sample(self, pid: int) -> None:
        cmdline = self._read(f"/proc/{pid}/cmdline")
        if not cmdline:
            return
        argv = [a.decode(errors="replace") for a in cmdline.split(b"\0") if a]
        kind = kind_of(argv)
        if kind is None or (pid, kind) in self.samples:
            return
        environ = self._read(f"/proc/{pid}/environ")
        if environ is None:
            return
        names = [item.partition(b"=")[0].decode(errors="replace") for item in environ.split(b"\0") if item]
        self.samples[(pid, kind)] = Sample(
            pid=pid,
            kind=kind,
            has_credential=self.credential in environ or self.credential in cmdline,
            prefect_vars=tuple(n for n in names if n.upper().startswith("PREFECT_")),
            argv0=argv[0],
        )


def cli(env: dict[str, str], sampler: Sampler, *args: str) -> subprocess.CompletedProcess[str]:
    """The aegir CLI, its process tree watched by ``sampler``."""
    proc = subprocess.Popen(
        [AEGIR, *args], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    sampler.roots.add(proc.pid)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_backup_and_migrate_children_never_see_the_api_credential(prefect_api, hosting):
    older, newer = hosting.verified_platform("d7-older"), hosting.verified_platform("d7-newer")
    name = hosting.site(older)
    assert install(name).is_completed()
    retitle(hosting, name, 7, "Content before the migrate")

    marker = uuid.uuid4().hex
    # what a worker-started flow run has: the credential in its environment, next to the API URL
    env = {**prefect_api.env, "PREFECT_API_AUTH_STRING": prefect_api.auth, MARKER: marker}
    sampler = Sampler(prefect_api.auth, marker)
    sampler.start()
    try:
        # the control: a php given the credential (and the marker) is caught with it
        control = subprocess.Popen(["php", "-r", "usleep(300000);"], env=env)
        sampler.watch.add(control.pid)
        assert control.wait(10) == 0
        backup = cli(env, sampler, "backup", name, "--description=child env probe")
        migrate = cli(env, sampler, "migrate", name, newer)
    finally:
        sampler.stop()
    assert sampler.error is None, sampler.error
    assert backup.returncode == 0, backup.stderr
    assert migrate.returncode == 0, migrate.stderr
    assert hosting.load_site(name).platform == newer
    assert titles(hosting, name, 7) == ["Content before the migrate"]

    caught = [s for s in sampler.samples.values() if s.pid == control.pid]
    assert caught and caught[0].has_credential and "PREFECT_API_AUTH_STRING" in caught[0].prefect_vars, caught
    samples = [s for s in sampler.samples.values() if s.pid != control.pid]
    kinds = Counter(s.kind for s in samples)
    print(f"sampled children by kind: {dict(kinds)} in {sampler.sweeps} sweeps")
    leaks = [s for s in samples if s.has_credential or s.prefect_vars]
    assert not leaks, leaks
    # drush runs for ~100 ms per call and many times per migrate; the dump, import and tar children of a small
    # sample site live for tens of ms: each kind alone may slip between two sweeps, but not all of them
    assert kinds["drush"] >= 1, kinds
    assert kinds["tar"] + kinds["mysqldump"] + kinds["mariadb-dump"] + kinds["mysql"] + kinds["mariadb"] >= 1, kinds
