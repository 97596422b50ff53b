"""Children that are not Prefect clients never inherit the API credential nor any PREFECT_* setting (DESIGN §11):
aegir.transport.childenv, LocalTransport.run, trees.push_tree/fetch_tree and the archive's local tools.

The archive and tree paths are observed through shims: ``tar``, ``gzip`` and ``zstd`` first on PATH, each
copying its own /proc/self/environ into a log directory before exec'ing the real tool."""

from __future__ import annotations

import io
import os
import secrets
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

import aegir.archive as archive
from aegir.transport import LocalTransport, trees
from aegir.transport.childenv import child_env, is_prefect_variable

CREDENTIAL = "admin:" + secrets.token_urlsafe(18)
API_KEY = "pnu_" + secrets.token_urlsafe(18)
API_URL = "http://127.0.0.1:4299/api"
SHIMMED = ("tar", "gzip", "zstd")
DUMP = b"".join(b"INSERT INTO `t` VALUES (%d,'row %d');\n" % (i, i) for i in range(400)) + b"-- Dump completed\n"


@pytest.fixture
def prefect_env(monkeypatch):
    """os.environ as a worker-started flow run has it: the credential, an API key and URL, a flow run id."""
    monkeypatch.setenv("PREFECT_API_AUTH_STRING", CREDENTIAL)
    monkeypatch.setenv("PREFECT_API_KEY", API_KEY)
    monkeypatch.setenv("PREFECT_API_URL", API_URL)
    monkeypatch.setenv("PREFECT__FLOW_RUN_ID", "0b7c1d2e-0000-4000-8000-000000000000")
    monkeypatch.setenv("prefect_lowercase_setting", "x")
    monkeypatch.setenv("AEGIR_CHILD_ENV_MARKER", "kept")


def parse_env(raw: bytes, sep: bytes) -> dict[str, str]:
    pairs = [item.decode().partition("=") for item in raw.split(sep) if item]
    return {k: v for k, _, v in pairs}


def assert_clean(env: dict[str, str], raw: bytes) -> None:
    assert not [k for k in env if is_prefect_variable(k)], env
    for secret in (CREDENTIAL, API_KEY, API_URL):
        assert secret.encode() not in raw
    assert env.get("PATH") == os.environ["PATH"]
    assert env.get("AEGIR_CHILD_ENV_MARKER") == "kept"


# -- child_env ----------------------------------------------------------------------------------------------
def test_child_env_drops_every_prefect_variable_and_keeps_the_rest(prefect_env):
    env = child_env()
    assert not [k for k in env if k.upper().startswith("PREFECT_")]
    assert env["PATH"] == os.environ["PATH"] and env["AEGIR_CHILD_ENV_MARKER"] == "kept"
    assert os.environ["PREFECT_API_AUTH_STRING"] == CREDENTIAL  # this process's own environment is untouched


def test_child_env_adds_extra_but_never_a_prefect_variable(prefect_env):
    env = child_env({"LC_ALL": "C", "AEGIR_CHILD_ENV_MARKER": "overridden"})
    assert env["LC_ALL"] == "C" and env["AEGIR_CHILD_ENV_MARKER"] == "overridden"
    assert "PREFECT_API_AUTH_STRING" not in env
    with pytest.raises(ValueError, match="PREFECT_API_AUTH_STRING"):
        child_env({"PREFECT_API_AUTH_STRING": CREDENTIAL})


# -- LocalTransport.run ---------------------------------------------------------------------------------------
def test_local_transport_children_get_no_prefect_variable(prefect_env):
    result = LocalTransport().run(["env", "-0"])
    assert_clean(parse_env(result.stdout, b"\0"), result.stdout)


def test_local_transport_grandchildren_get_no_prefect_variable(prefect_env):
    """What drush (a child) passes on to the mysql or php it starts."""
    result = LocalTransport().run(["sh", "-c", "env -0"])
    assert_clean(parse_env(result.stdout, b"\0"), result.stdout)


# -- the archive's local tools and tree copies (through PATH shims) -------------------------------------------
@pytest.fixture
def shims(tmp_path, monkeypatch, prefect_env) -> Path:
    """``tar``, ``gzip``, ``zstd`` on PATH that log their environment to the returned directory."""
    bindir, log = tmp_path / "shim-bin", tmp_path / "env-log"
    bindir.mkdir()
    log.mkdir()
    for tool in SHIMMED:
        real = shutil.which(tool)
        assert real, f"{tool} is needed"
        shim = bindir / tool
        shim.write_text(f'#!/bin/sh\ncat /proc/$$/environ > "{log}/{tool}.$$"\nexec {real} "$@"\n')
        shim.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return log


def logged(log: Path) -> dict[str, int]:
    """Check every logged environment; the number of processes seen per tool."""
    counts = dict.fromkeys(SHIMMED, 0)
    for path in log.iterdir():
        raw = path.read_bytes()
        assert_clean(parse_env(raw, b"\0"), raw)
        counts[path.name.split(".")[0]] += 1
    return counts


@pytest.fixture
def site(tmp_path) -> Path:
    s = tmp_path / "sites" / "example.com"
    (s / "files").mkdir(parents=True)
    (s / "settings.php").write_text("<?php\n$databases = [];\n")
    (s / "files" / "a.txt").write_text("hello\n" * 100)
    return s


def test_tree_copies_start_tar_without_prefect_variables(shims, site, tmp_path):
    transport = LocalTransport()
    transport.push_tree(str(site), str(tmp_path / "pushed"))
    trees.fetch_tree(transport, str(tmp_path / "pushed"), str(tmp_path / "fetched"))
    assert (tmp_path / "fetched" / "files" / "a.txt").read_text() == "hello\n" * 100
    assert logged(shims)["tar"] == 4  # local and "remote" tar, both ways


@pytest.mark.parametrize("strategy", ["single", "streamed"])
@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_archive_tools_start_without_prefect_variables(shims, site, tmp_path, monkeypatch, strategy, compression):
    singles = set(archive.COMPRESSORS) if strategy == "single" else set()
    monkeypatch.setattr(archive, "SINGLE_TAR_COMPRESSIONS", singles)
    path = tmp_path / "backups" / archive.archive_name("example.com", datetime(2026, 1, 2, tzinfo=UTC), compression)

    def dump(out) -> int:
        out.write(DUMP)
        return len(DUMP)

    manifest = {"site": "@example.com", "uri": "example.com", "reason": "manual"}
    archive.create_archive(
        path=str(path),
        site_transport=LocalTransport(),
        site_path=str(site),
        dump=dump,
        manifest=manifest,
        compression=compression,
    )
    out = io.BytesIO()
    archive.extract_archive(str(path), site_transport=LocalTransport(), site_path=str(tmp_path / "x"), dump_out=out)
    assert out.getvalue() == DUMP
    counts = logged(shims)
    assert counts["tar"] >= 2 and counts[compression] >= 2, counts  # create + verify/extract


def test_archive_start_and_compress_small_pass_no_prefect_variables(shims, prefect_env):
    proc = archive._start(["env", "-0"], stdout=subprocess.PIPE)
    raw, _ = proc.communicate()
    env = parse_env(raw, b"\0")
    assert_clean(env, raw)
    assert env["LC_ALL"] == "C"
    assert archive._compress_small("zstd", b"manifest") and logged(shims)["zstd"] == 1
