"""Backup archives (aegir.archive) and the dump helpers that need no database (aegir.services.dump).

Archives are made from a temporary site directory through LocalTransport, with a fake dump callable, by both
strategies: the single local tar (``single``) and the streamed site tar used for remote sites (``streamed``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import aegir.archive as archive
from aegir.archive import (
    ArchiveError,
    TarMember,
    archive_name,
    create_archive,
    delete_archive,
    extract_archive,
    tar_members_safe,
    verify_archive,
)
from aegir.contexts import ServerContext
from aegir.errors import AegirError, InputError
from aegir.services import dump as dumpmod
from aegir.services.dump import DumpError, client_options, dump_database, import_database, strip_definer
from aegir.transport import CommandResult, LocalTransport, SecretFile

COMPRESSIONS = ["gzip", "zstd"]
STRATEGIES = ["single", "streamed"]
DUMP = b"".join(b"INSERT INTO `t` VALUES (%d,'row %d');\n" % (i, i) for i in range(400)) + b"-- Dump completed\n"


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path) -> str:
    return sha256(Path(path).read_bytes())


@pytest.fixture(params=STRATEGIES)
def strategy(request, monkeypatch):
    if request.param == "streamed":
        monkeypatch.setattr(archive, "SINGLE_TAR_COMPRESSIONS", set())
    else:
        monkeypatch.setattr(archive, "SINGLE_TAR_COMPRESSIONS", set(COMPRESSIONS))
    return request.param


@pytest.fixture
def site(tmp_path) -> Path:
    """A Drupal-like site directory: modes, a symlink, an executable, private/temp junk, an empty dir."""
    s = tmp_path / "sites" / "example.com"
    (s / "files" / "sub").mkdir(parents=True)
    (s / "files" / "empty").mkdir()
    (s / "private" / "files").mkdir(parents=True)
    (s / "private" / "temp" / "deep").mkdir(parents=True)
    (s / "settings.php").write_text("<?php\n$databases = [];\n")
    (s / "settings.php").chmod(0o440)
    (s / "files" / "a.txt").write_text("hello\n")
    (s / "files" / "sub" / "b.bin").write_bytes(os.urandom(200_000) + bytes(5000))  # ends in zeros
    (s / "files" / "sub" / "b.bin").chmod(0o600)
    (s / "files" / "run.sh").write_text("#!/bin/sh\n")
    (s / "files" / "run.sh").chmod(0o755)
    (s / "files" / "link").symlink_to("sub/b.bin")
    (s / "files" / "odd name\nwith newline.txt").write_text("odd\n")
    (s / "files" / "ünïcødé.txt").write_text("utf-8\n")
    os.link(s / "files" / "a.txt", s / "files" / "hard")  # one regular file + one hard link in the tar
    (s / "private" / "files" / "secret.txt").write_text("private\n")
    (s / "private" / "temp" / "junk.tmp").write_text("junk")
    (s / "private" / "temp" / "deep" / "junk2").write_text("junk")
    return s


SITE_FILES = {  # regular files the archive must hold (private/temp content left out)
    "settings.php",
    "files/a.txt",
    "files/sub/b.bin",
    "files/run.sh",
    "files/odd name\nwith newline.txt",
    "files/ünïcødé.txt",
    "private/files/secret.txt",
}  # plus files/hard, a hard link to files/a.txt: counted once


def manifest_in() -> dict:
    return {
        "site": "@example.com",
        "uri": "example.com",
        "platform": "@platform_d10",
        "drupal_version": "10.3.1",
        "packages": [{"name": "node", "type": "module", "version": "10.3.1", "schema_version": 10001}],
        "db_name": "examplecom",
        "reason": "manual",
    }


def fake_dump(data: bytes = DUMP):
    def dump(out) -> int:
        for i in range(0, len(data), 1000):
            out.write(data[i : i + 1000])
        return len(data)

    return dump


def make(backups: Path, site: Path, compression: str = "gzip", dump=None, when=None, **kw):
    when = when or datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    path = backups / archive_name("example.com", when, compression)
    info = create_archive(
        path=str(path),
        site_transport=LocalTransport(),
        site_path=str(site),
        dump=dump or fake_dump(),
        manifest=manifest_in(),
        compression=compression,
        **kw,
    )
    return path, info


def decompressed(path: Path) -> bytes:
    tool = ["gzip", "-dc"] if path.name.endswith(".gz") else ["zstd", "-q", "-dc"]
    return subprocess.run([*tool, str(path)], check=True, capture_output=True).stdout


def tar_listing(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(decompressed(path)), mode="r:") as tf:
        return {m.name: m for m in tf.getmembers()}


def contents(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


# -- names ----------------------------------------------------------------------------------------------------
def test_archive_name():
    when = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    assert archive_name("example.com", when) == "example.com-20260304.050607.tar.gz"
    assert archive_name("example.com", when, "zstd") == "example.com-20260304.050607.tar.zst"
    cet = when.astimezone(timezone(timedelta(hours=1)))
    assert archive_name("example.com", cet) == "example.com-20260304.050607.tar.gz"  # aware → UTC
    for bad in ("../etc", "Example.com", "a/b", "", ".hidden"):
        with pytest.raises(InputError) as e:
            archive_name(bad, when)
        assert e.value.field == "uri"
    with pytest.raises(InputError) as e:
        archive_name("example.com", when, "bzip2")
    assert e.value.field == "compression"


# -- create -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_create_modes_names_sidecar_manifest(tmp_path, site, compression, strategy):
    backups = tmp_path / "aegir" / "backups"
    assert not backups.exists()
    path, info = make(backups, site, compression)

    assert mode(backups) == 0o700
    assert contents(backups) == sorted([path.name, path.name + ".json"])  # no temp file left behind
    assert path.name == f"example.com-20260304.050607{archive.EXTENSIONS[compression]}"
    assert mode(path) == 0o600 and mode(str(path) + ".json") == 0o600
    assert info.path == str(path) and info.size == path.stat().st_size and info.sha256 == file_sha256(path)

    m = info.manifest
    for k, v in manifest_in().items():
        assert m[k] == v
    assert m["format_version"] == 1 and m["compression"] == compression
    assert datetime.fromisoformat(m["created"]).tzinfo is not None
    assert m["dump_sha256"] == sha256(DUMP) and m["dump_bytes"] == len(DUMP)
    assert m["files_count"] == len(SITE_FILES)
    assert m["files_bytes"] == sum((site / f).stat().st_size for f in SITE_FILES)

    sidecar = json.loads(Path(str(path) + ".json").read_text())
    assert sidecar == {**m, "archive_sha256": info.sha256, "archive_bytes": info.size}

    # one ordinary tar stream (Python's tarfile, GNU tar and Aegir's `gunzip -c F | tar pxf -` read it)
    members = tar_listing(path)
    names = {n.removeprefix("./").rstrip("/") for n in members}
    assert SITE_FILES | {"database.sql", "manifest.json", "files/link", "files/empty", "private/temp"} <= names
    assert not any(n.startswith("private/temp/") for n in names)
    assert members["./files/link"].issym() and members["./files/link"].linkname == "sub/b.bin"
    assert members["./files/sub/b.bin"].mode & 0o777 == 0o600
    assert members["./settings.php"].mode & 0o777 == 0o440
    with tarfile.open(fileobj=io.BytesIO(decompressed(path))) as tf:
        assert tf.extractfile("./database.sql").read() == DUMP
        assert json.loads(tf.extractfile("./manifest.json").read()) == m
    listing = subprocess.run(["tar", "-tvaf", str(path)], check=True, capture_output=True, text=True)
    assert listing.stderr == "" and "./database.sql" in listing.stdout
    if compression == "gzip":
        out = subprocess.run(f"gunzip -c '{path}' | tar -tf -", shell=True, check=True, capture_output=True)
        assert b"./manifest.json" in out.stdout and out.stderr == b""
    assert verify_archive(str(path), expected_sha256=info.sha256) == m


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_extract_round_trip(tmp_path, site, compression, strategy):
    path, info = make(tmp_path / "backups", site, compression)
    target = tmp_path / "restored" / "example.com"
    out = io.BytesIO()
    manifest = extract_archive(str(path), site_transport=LocalTransport(), site_path=str(target), dump_out=out)
    assert manifest == info.manifest
    assert out.getvalue() == DUMP
    assert mode(target) == 0o755
    for f in SITE_FILES:
        assert (target / f).read_bytes() == (site / f).read_bytes(), f
        assert mode(target / f) == mode(site / f), f
    assert (target / "files" / "link").is_symlink() and os.readlink(target / "files" / "link") == "sub/b.bin"
    assert (target / "files" / "hard").stat().st_ino == (target / "files" / "a.txt").stat().st_ino
    assert (target / "files" / "empty").is_dir()
    assert contents(target / "private" / "temp") == []
    assert not (target / "database.sql").exists() and not (target / "manifest.json").exists()
    # an existing, empty directory is fine too
    again = tmp_path / "again"
    again.mkdir()
    extract_archive(str(path), site_transport=LocalTransport(), site_path=str(again), dump_out=io.BytesIO())
    assert (again / "files" / "a.txt").read_text() == "hello\n"


def test_both_strategies_make_the_same_tar(tmp_path, site, monkeypatch):
    monkeypatch.setattr(archive, "SINGLE_TAR_COMPRESSIONS", {"gzip"})
    single, _ = make(tmp_path / "a", site)
    monkeypatch.setattr(archive, "SINGLE_TAR_COMPRESSIONS", set())
    streamed, _ = make(tmp_path / "b", site)
    a, b = tar_listing(single), tar_listing(streamed)
    assert list(a) == list(b)  # same members, same order: site, then database.sql, then manifest.json
    assert list(a)[-2:] == ["./database.sql", "./manifest.json"]
    for name in a:
        assert (a[name].type, a[name].size, a[name].mode, a[name].linkname) == (
            b[name].type,
            b[name].size,
            b[name].mode,
            b[name].linkname,
        ), name


def test_stale_dump_and_manifest_in_the_site_are_left_out(tmp_path, site, strategy):
    """A database.sql left in the site directory (an interrupted Aegir backup) must not shadow the dump."""
    (site / "database.sql").write_bytes(b"-- stale dump of another day\n" * 100)
    (site / "manifest.json").write_text("{}")
    path, info = make(tmp_path / "backups", site)
    assert info.manifest["files_count"] == len(SITE_FILES)
    out = io.BytesIO()
    target = tmp_path / "restored"
    assert extract_archive(str(path), site_transport=LocalTransport(), site_path=str(target), dump_out=out)
    assert out.getvalue() == DUMP
    assert not (target / "database.sql").exists() and not (target / "manifest.json").exists()


def test_existing_archive_is_never_overwritten(tmp_path, site, strategy):
    path, info = make(tmp_path / "backups", site)
    with pytest.raises(ArchiveError, match="already exists"):
        make(tmp_path / "backups", site, dump=fake_dump(DUMP + b"-- other\n"))
    assert file_sha256(path) == info.sha256
    assert contents(tmp_path / "backups") == sorted([path.name, path.name + ".json"])


def test_a_second_backup_in_progress_is_refused(tmp_path, site):
    backups = tmp_path / "backups"
    backups.mkdir(mode=0o700)
    name = archive_name("example.com", datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC))
    (backups / f".{name}.tmp").mkdir()
    with pytest.raises(ArchiveError, match="another backup"):
        make(backups, site)
    assert contents(backups) == [f".{name}.tmp"]


@pytest.mark.parametrize("size", [0, 100, archive.MIN_DUMP_BYTES - 1])
def test_small_dump_is_refused(tmp_path, site, strategy, size):
    backups = tmp_path / "backups"
    with pytest.raises(ArchiveError, match=f"only {size} bytes"):
        make(backups, site, dump=fake_dump(DUMP[:size]))
    assert contents(backups) == []


def test_failing_dump_leaves_nothing(tmp_path, site, strategy):
    def dump(out):
        out.write(DUMP[:3000])
        raise DumpError("mysqldump of database 'x' failed: Lost connection")

    backups = tmp_path / "backups"
    with pytest.raises(ArchiveError, match="database dump failed.*Lost connection"):
        make(backups, site, dump=dump)
    assert contents(backups) == []


@pytest.mark.parametrize(
    "script",
    [
        "cat >/dev/null; echo 'compressor exploded' >&2; exit 3",  # reads everything, then fails
        "head -c 100 >/dev/null; echo 'compressor exploded' >&2; exit 3",  # dies early: writers see EPIPE
    ],
)
def test_failing_compressor_leaves_nothing(tmp_path, site, strategy, monkeypatch, script):
    monkeypatch.setitem(archive.COMPRESSORS, "gzip", ["sh", "-c", script])
    backups = tmp_path / "backups"
    with pytest.raises(ArchiveError, match="exploded"):
        make(backups, site)
    assert contents(backups) == []


def test_missing_site_directory(tmp_path, strategy):
    backups = tmp_path / "backups"
    with pytest.raises(ArchiveError, match="tar of the site directory .*nowhere"):
        make(backups, tmp_path / "nowhere")
    assert contents(backups) == []


def test_fifo_in_site_is_refused(tmp_path, site, strategy):
    os.mkfifo(site / "files" / "pipe")
    backups = tmp_path / "backups"
    with pytest.raises(ArchiveError, match="FIFO.*pipe"):
        make(backups, site)
    assert contents(backups) == []


def test_bad_arguments(tmp_path, site):
    with pytest.raises(InputError):
        create_archive(
            path=str(tmp_path / "x.tar.gz"),
            site_transport=LocalTransport(),
            site_path="relative/path",
            dump=fake_dump(),
            manifest={},
        )
    with pytest.raises(ArchiveError, match="must be named"):
        create_archive(
            path=str(tmp_path / "x.tar.zst"),
            site_transport=LocalTransport(),
            site_path=str(site),
            dump=fake_dump(),
            manifest={},
        )
    with pytest.raises(ArchiveError, match="JSON"):
        create_archive(
            path=str(tmp_path / "x.tar.gz"),
            site_transport=LocalTransport(),
            site_path=str(site),
            dump=fake_dump(),
            manifest={"bad": object()},
        )
    assert not (tmp_path / "x.tar.gz").exists()


@pytest.fixture
def tiny_fs(tmp_path):
    """A 1 MiB tmpfs (we run as root); without mount permission the test is skipped (see the fsync test)."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_while_writing_the_archive(tmp_path, site, tiny_fs, strategy):
    (site / "files" / "big.bin").write_bytes(os.urandom(3 << 20))  # incompressible, 3 MiB > 1 MiB
    backups = tiny_fs / "backups"
    with pytest.raises(ArchiveError, match="disk full.*(No space left|ENOSPC)"):
        make(backups, site)
    assert contents(backups) == []


def test_disk_full_while_writing_the_dump(tmp_path, site, tiny_fs, strategy):
    big = os.urandom(3 << 20)
    backups = tiny_fs / "backups"
    with pytest.raises(ArchiveError, match="disk full"):
        make(backups, site, dump=fake_dump(big))
    assert contents(backups) == []


def test_disk_full_at_fsync(tmp_path, site, strategy, monkeypatch):
    """Delayed allocation: the space runs out only when the data is flushed."""

    def fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(archive.os, "fsync", fsync)
    backups = tmp_path / "backups"
    with pytest.raises(ArchiveError, match="disk full.*No space left"):
        make(backups, site)
    assert contents(backups) == []


def test_delete_archive(tmp_path, site):
    path, _ = make(tmp_path / "backups", site)
    delete_archive(str(path))
    assert contents(tmp_path / "backups") == []
    delete_archive(str(path))  # already gone: fine
    with pytest.raises(ArchiveError, match="not a backup archive"):
        delete_archive(str(tmp_path / "backups" / "something.txt"))


# -- verify -------------------------------------------------------------------------------------------------------
@pytest.fixture(params=COMPRESSIONS)
def good(request, tmp_path, site):
    path, info = make(tmp_path / "backups", site, request.param)
    return path, info


def test_verify_good(good):
    path, info = good
    assert verify_archive(str(path)) == info.manifest
    assert verify_archive(str(path), expected_sha256=info.sha256.upper()) == info.manifest
    os.unlink(str(path) + ".json")  # without the sidecar: structure and dump checksum still verified
    assert verify_archive(str(path)) == info.manifest


def test_verify_wrong_expected_sha(good):
    path, _ = good
    with pytest.raises(ArchiveError, match=r"checksum mismatch \(tampered or corrupted\)"):
        verify_archive(str(path), expected_sha256="0" * 64)


@pytest.mark.parametrize("with_sidecar", [True, False])
def test_verify_truncated(good, with_sidecar):
    path, info = good
    if not with_sidecar:
        os.unlink(str(path) + ".json")
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 20):
        path.write_bytes(data[:cut])
        with pytest.raises(ArchiveError, match="truncated"):
            verify_archive(str(path))
    path.write_bytes(b"")
    with pytest.raises(ArchiveError, match="truncated"):
        verify_archive(str(path))


@pytest.mark.parametrize("with_sidecar", [True, False])
def test_verify_flipped_byte(good, with_sidecar):
    path, info = good
    if not with_sidecar:
        os.unlink(str(path) + ".json")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError) as e:
        verify_archive(str(path))
    if with_sidecar:
        assert "checksum mismatch (tampered or corrupted)" in str(e.value)
    else:  # the decompressor's own checks catch it
        assert "corrupt" in str(e.value) or "checksum mismatch" in str(e.value)


def test_verify_random_tarball(tmp_path):
    junk = tmp_path / "junk"
    (junk / "d").mkdir(parents=True)
    (junk / "d" / "x").write_bytes(os.urandom(5000))
    (junk / "database.sql").write_text("-- not ours\n")
    path = tmp_path / "example.com-20260101.000000.tar.gz"
    subprocess.run(["tar", "czf", str(path), "-C", str(junk), "."], check=True)
    with pytest.raises(ArchiveError, match="not an Aegir backup"):
        verify_archive(str(path))
    plain = tmp_path / "plain.tar.gz"
    plain.write_bytes(b"hello, this is not compressed at all\n" * 100)
    with pytest.raises(ArchiveError, match="not an Aegir backup"):
        verify_archive(str(plain))
    gz_not_tar = tmp_path / "notar.tar.gz"
    subprocess.run(f"head -c 5000 /dev/urandom | gzip > '{gz_not_tar}'", shell=True, check=True)
    with pytest.raises(ArchiveError, match="not a tar archive|not an Aegir backup"):
        verify_archive(str(gz_not_tar))


def craft(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """A gzip tarball made with Python's tarfile, for archives our code would never write."""
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT) as tf:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return path


def reg(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = 0o644
    return info, data


def special(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def aegir_members(dump: bytes = DUMP, manifest: dict | None = None) -> list:
    m = manifest or {"format_version": 1, "dump_sha256": sha256(dump), "dump_bytes": len(dump)}
    return [reg("./database.sql", dump), reg("./manifest.json", json.dumps(m).encode())]


def test_verify_missing_dump(tmp_path):
    m = json.dumps({"format_version": 1, "dump_sha256": sha256(DUMP), "dump_bytes": len(DUMP)}).encode()
    path = craft(tmp_path / "a.tar.gz", [reg("./settings.php"), reg("./manifest.json", m)])
    with pytest.raises(ArchiveError, match="missing database.sql"):
        verify_archive(str(path))


def test_verify_dump_not_matching_manifest(tmp_path):
    manifest = {"format_version": 1, "dump_sha256": sha256(DUMP), "dump_bytes": len(DUMP)}
    tampered = DUMP.replace(b"row 1'", b"row X'")
    path = craft(tmp_path / "a.tar.gz", [reg("./settings.php"), *aegir_members(tampered, manifest)])
    with pytest.raises(ArchiveError, match=r"checksum mismatch \(tampered or corrupted\).*database.sql"):
        verify_archive(str(path))


def test_verify_unsupported_format_version(tmp_path):
    manifest = {"format_version": 2, "dump_sha256": sha256(DUMP), "dump_bytes": len(DUMP)}
    path = craft(tmp_path / "a.tar.gz", aegir_members(DUMP, manifest))
    with pytest.raises(ArchiveError, match="format_version 2 is not supported"):
        verify_archive(str(path))


UNSAFE = {
    "dotdot": ([reg("../evil")], "'..'"),
    "dotdot-inside": ([reg("./files/../../evil")], "'..'"),
    "absolute": ([reg("/tmp/evil")], "absolute"),
    "device": ([special("./dev", tarfile.CHRTYPE)], "character device"),
    "fifo": ([special("./fifo", tarfile.FIFOTYPE)], "FIFO"),
    "through-symlink": (
        [special("./files", tarfile.SYMTYPE, "/etc"), reg("./files/passwd")],
        "goes through the archived symlink",
    ),
    "hardlink-out": ([special("./hl", tarfile.LNKTYPE, "../../etc/passwd")], "hard link"),
    "hardlink-abs": ([special("./hl", tarfile.LNKTYPE, "/etc/passwd")], "hard link"),
}


@pytest.mark.parametrize("case", sorted(UNSAFE))
def test_unsafe_members_refused_and_nothing_extracted(tmp_path, case):
    entries, why = UNSAFE[case]
    path = craft(tmp_path / "evil.tar.gz", [reg("./settings.php"), *entries, *aegir_members()])
    with pytest.raises(ArchiveError, match="unsafe member") as e:
        verify_archive(str(path))
    assert why in str(e.value)
    target = tmp_path / "work" / "site"
    with pytest.raises(ArchiveError, match="unsafe member"):
        extract_archive(str(path), site_transport=LocalTransport(), site_path=str(target), dump_out=io.BytesIO())
    assert not target.exists()
    assert not (tmp_path / "evil").exists() and not (tmp_path / "work" / "evil").exists()


def test_tar_members_safe():
    ok = [
        TarMember("./", b"5"),
        TarMember("./files/a", b"0"),
        TarMember("files/link", b"2", linkname="/var/shared/files"),  # a symlink may point anywhere
        TarMember("./files/hl", b"1", linkname="./files/a"),
    ]
    tar_members_safe(ok)
    info = tarfile.TarInfo("./x")
    tar_members_safe([info])  # tarfile.TarInfo works too
    for bad in (
        [TarMember("../x", b"0")],
        [TarMember("/x", b"0")],
        [TarMember("./b", b"4")],
        [TarMember("./l", b"2", linkname="x"), TarMember("./l/y", b"0")],
        [TarMember("./h", b"1", linkname="../x")],
        [TarMember(".", b"2", linkname="/")],
        [TarMember("./x", b"V")],
    ):
        with pytest.raises(ArchiveError, match="unsafe member"):
            tar_members_safe(bad)


def test_extract_refuses_a_non_empty_target(good, tmp_path):
    path, _ = good
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(ArchiveError, match="not empty"):
        extract_archive(str(path), site_transport=LocalTransport(), site_path=str(target), dump_out=io.BytesIO())
    assert contents(target) == ["keep.txt"]


def test_extract_verifies_before_touching_anything(good, tmp_path):
    path, _ = good
    data = bytearray(path.read_bytes())
    data[-30] ^= 1
    path.write_bytes(bytes(data))
    target = tmp_path / "never"
    out = io.BytesIO()
    with pytest.raises(ArchiveError, match="checksum mismatch"):
        extract_archive(str(path), site_transport=LocalTransport(), site_path=str(target), dump_out=out)
    assert not target.exists() and out.getvalue() == b""


def test_extract_dump_out_failure_cleans_up(good, tmp_path):
    path, _ = good

    class Broken:
        def write(self, data):
            raise OSError(errno.EPIPE, "Broken pipe")

    target = tmp_path / "site"
    with pytest.raises(ArchiveError, match="database.sql"):
        extract_archive(str(path), site_transport=LocalTransport(), site_path=str(target), dump_out=Broken())
    assert not target.exists()


class FailingTar(LocalTransport):
    """Stands in for a target whose tar dies half-way (disk full, permissions)."""

    def run(self, argv, **kw):
        if "-x" in argv:
            argv = ["sh", "-c", "head -c 3000 >/dev/null; echo 'tar: ./files: disk on fire' >&2; exit 2"]
        return super().run(argv, **kw)


def test_extract_target_failure_cleans_up(good, tmp_path):
    path, _ = good
    target = tmp_path / "site"
    with pytest.raises(ArchiveError, match="extracting into .*disk on fire"):
        extract_archive(str(path), site_transport=FailingTar(), site_path=str(target), dump_out=io.BytesIO())
    assert not target.exists()


class BusySite(LocalTransport):
    """A site tar that reports a file changed while it was read (GNU tar: exit 1, archive still valid)."""

    def run(self, argv, **kw):
        result = super().run(argv, **kw)
        if "-c" in argv:
            return CommandResult(result.argv, 1, result.stdout, b"tar: ./files/a.txt: file changed as we read it\n")
        return result


def test_file_changed_while_read_is_a_warning(tmp_path, site, monkeypatch):
    monkeypatch.setattr(archive, "SINGLE_TAR_COMPRESSIONS", set())
    path = tmp_path / "backups" / "example.com-20260101.000000.tar.gz"
    info = create_archive(
        path=str(path), site_transport=BusySite(), site_path=str(site), dump=fake_dump(), manifest=manifest_in()
    )
    assert info.warnings == ["tar: ./files/a.txt: file changed as we read it"]
    assert verify_archive(str(path)) == info.manifest


def test_errors_are_aegir_errors():
    assert issubclass(ArchiveError, AegirError) and issubclass(DumpError, AegirError)


def test_tar_verdict():
    job = archive._Job("/b/x.tar.gz", "gzip", LocalTransport(), "/s", fake_dump(), {})
    assert archive._tar_verdict(job, 0, []) == []
    assert archive._tar_verdict(job, 1, ["tar: ./files/a: file changed as we read it"]) == [
        "tar: ./files/a: file changed as we read it"
    ]
    with pytest.raises(ArchiveError, match="exit 1"):
        archive._tar_verdict(job, 1, ["tar: ./x: Cannot open: Permission denied"])
    with pytest.raises(ArchiveError, match="exit 2"):
        archive._tar_verdict(job, 2, ["tar: /s: Cannot open: No such file or directory"])


# -- the dump helpers (no database needed) -----------------------------------------------------------------------
NASTY = "p#a\"s\\s w'o;rd\t$x"


def server(password: str | None = NASTY, **kw) -> ServerContext:
    fields = {"name": "@server_master", "db_service_type": "mysql", "db_host": "127.0.0.1", "db_user": "admin"}
    fields.update(kw)
    return ServerContext(**fields, db_password=password)


def test_client_options_render_and_parse():
    opts = client_options(server())
    assert isinstance(opts, SecretFile)
    assert opts.prefix == "--defaults-file=" and opts.redact == (NASTY,)
    assert opts.content.startswith("[client]\nuser=")
    assert "host=127.0.0.1\nport=3306\n" in opts.content
    assert NASTY not in repr(opts)
    # the real client parses the escaped password back to the original (nothing connects)
    res = LocalTransport().run(["mysqldump", opts, "--print-defaults"])
    assert f"--password={NASTY} " in res.text
    assert "--user=admin" in res.text and "--protocol=tcp" in res.text


def test_client_options_need_a_mysql_server():
    with pytest.raises(DumpError, match="no mysql db service"):
        client_options(ServerContext(name="@web"))


class FakeTransport:
    """Records argv; streams ``output`` into stdout, as a transport would."""

    host = "fake"

    def __init__(self, output: bytes = DUMP, exit_code: int = 0, stderr: bytes = b"") -> None:
        self.output, self.exit_code, self.stderr = output, exit_code, stderr
        self.calls: list = []
        self.stdin = b""

    def run(self, argv, *, stdin=None, stdout=None, check=True, timeout=None, cwd=None):
        from aegir.transport.base import TransportError, display_argv, redact

        self.calls.append(list(argv))
        if stdin is not None:
            self.stdin = stdin.read()
        if stdout is not None:
            for i in range(0, len(self.output), 777):
                with contextlib.suppress(OSError):
                    stdout.write(self.output[i : i + 777])
        if check and self.exit_code:
            secrets = [s for a in argv if isinstance(a, SecretFile) for s in a.redact]
            raise TransportError(
                "command failed",
                command=display_argv(argv),
                exit_code=self.exit_code,
                stderr=redact(self.stderr.decode(), secrets),
            )
        return CommandResult(list(map(str, argv)), self.exit_code, b"", self.stderr)


def test_dump_database_argv_and_stream():
    t = FakeTransport()
    out = io.BytesIO()
    assert dump_database(t, server(), "examplecom", out) == len(DUMP)
    assert out.getvalue() == DUMP
    argv = t.calls[0]
    assert argv[0] == "mysqldump" and isinstance(argv[1], SecretFile)  # the option file first: required
    assert argv[1].prefix == "--defaults-file="
    for opt in ("--single-transaction", "--quick", "--routines", "--triggers", "--hex-blob"):
        assert opt in argv
    assert argv[-2:] == ["--", "examplecom"]
    assert not any(NASTY in a for a in argv if isinstance(a, str))


def test_dump_database_failure_is_redacted():
    stderr = f"mysqldump: Got error: 1045: Access denied for user 'admin' (using password {NASTY})".encode()
    t = FakeTransport(output=b"-- partial\n" * 200, exit_code=2, stderr=stderr)
    with pytest.raises(DumpError) as e:
        dump_database(t, server(), "examplecom", io.BytesIO())
    assert "examplecom" in str(e.value) and "Access denied" in str(e.value) and "exit code 2" in str(e.value)
    assert NASTY not in str(e.value)


def test_unreachable_db_server_is_transient(tmp_path, site):
    stderr = b"mysqldump: Got error: 2002: \"Can't connect to server on '10.0.0.9' (115)\" when trying to connect"
    t = FakeTransport(output=b"", exit_code=2, stderr=stderr)
    with pytest.raises(DumpError) as e:
        dump_database(t, server(), "examplecom", io.BytesIO())
    assert e.value.transient
    with pytest.raises(ArchiveError) as a:
        make(tmp_path / "b", site, dump=lambda out: dump_database(t, server(), "examplecom", out))
    assert a.value.transient and "Can't connect" in str(a.value)
    denied = FakeTransport(output=b"", exit_code=2, stderr=b"mysqldump: Got error: 1045: Access denied")
    with pytest.raises(DumpError) as e:
        dump_database(denied, server(), "examplecom", io.BytesIO())
    assert not e.value.transient


def test_dump_database_without_trailer_is_a_failure():
    t = FakeTransport(output=DUMP.replace(b"-- Dump completed\n", b""))
    with pytest.raises(DumpError, match="incomplete"):
        dump_database(t, server(), "examplecom", io.BytesIO())


def test_dump_database_write_failure_is_a_failure():
    class Full:
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DumpError, match="No space left"):
        dump_database(FakeTransport(), server(), "examplecom", Full())


@pytest.mark.parametrize("name", ["a-b", "x;drop", "", "a" * 65, "../x", "-x"])
def test_unsafe_database_names(name):
    t = FakeTransport()
    with pytest.raises(DumpError, match="unsafe database name"):
        dump_database(t, server(), name, io.BytesIO())
    with pytest.raises(DumpError, match="unsafe database name"):
        import_database(t, server(), name, io.BytesIO(b""))
    assert t.calls == []


def test_import_database_argv_and_stdin():
    t = FakeTransport(output=b"")
    import_database(t, server(), "newdb", io.BytesIO(DUMP))
    argv = t.calls[0]
    assert argv[0] == "mysql" and isinstance(argv[1], SecretFile) and argv[-2:] == ["--", "newdb"]
    assert t.stdin == DUMP


DEFINER_DUMP = b"".join(
    line + b"\n"
    for line in [
        b"CREATE TABLE `t` (`x` int);",
        b"INSERT INTO `t` VALUES",
        b"(1),",
        b"(2);",
        b"/*!50001 CREATE ALGORITHM=UNDEFINED */",
        b"/*!50013 DEFINER=`site_old`@`10.0.0.%` SQL SECURITY DEFINER */",
        b"/*!50001 VIEW `v` AS select `t`.`x` AS `x` from `t` */;",
        b"/*!50003 CREATE*/ /*!50017 DEFINER=`site_old`@`localhost`*/ /*!50003 TRIGGER `tr` BEFORE INSERT ON `t` "
        b"FOR EACH ROW SET NEW.x = NEW.x + 1 */;;",
        b"CREATE DEFINER=`site_old`@`%` PROCEDURE `p`()",
        b"INSERT INTO `t` VALUES (3,'CREATE DEFINER=`a`@`b` stays: row data');",
        b"(4,'/*!50017 DEFINER=`a`@`b`*/ stays too'),",
        b"-- Dump completed",
    ]
)


@pytest.mark.parametrize("chunk", [1, 5, 64, 777, 1 << 20])
def test_definers_stripped_while_streaming(chunk):
    out = io.BytesIO()

    class Chunked(FakeTransport):
        def run(self, argv, *, stdout=None, **kw):
            for i in range(0, len(DEFINER_DUMP), chunk):
                stdout.write(DEFINER_DUMP[i : i + chunk])
            return CommandResult([], 0)

    dump_database(Chunked(), server(), "db", out)
    text = out.getvalue()
    assert b"site_old" not in text
    assert b"/*!50001 VIEW `v` AS" in text and b"TRIGGER `tr`" in text and b"CREATE PROCEDURE `p`()" in text
    assert b"(3,'CREATE DEFINER=`a`@`b` stays: row data')" in text
    assert b"(4,'/*!50017 DEFINER=`a`@`b`*/ stays too')" in text
    assert text.endswith(b"-- Dump completed\n")
    assert dump_database(Chunked(), server(), "db", io.BytesIO(), strip_definers=False) == len(DEFINER_DUMP)


def test_strip_definer_lines():
    assert strip_definer(b"/*!50013 DEFINER=`a`@`b` SQL SECURITY DEFINER */\n") == b""
    assert strip_definer(b"CREATE DEFINER=`a``x`@`b` FUNCTION f()\n") == b"CREATE FUNCTION f()\n"
    assert strip_definer(b"plain line\n") == b"plain line\n"
    assert dumpmod.MIN_DUMP_BYTES == archive.MIN_DUMP_BYTES == 1024


def test_unique_names_do_not_collide(tmp_path, site):
    """Two backups of one site a second apart: two archives, both valid."""
    backups = tmp_path / "b"
    p1, _ = make(backups, site, when=datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC))
    p2, _ = make(backups, site, when=datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC))
    assert p1 != p2 and verify_archive(str(p1)) and verify_archive(str(p2))
    assert len(contents(backups)) == 4 and not any(n.startswith(".") for n in contents(backups))
