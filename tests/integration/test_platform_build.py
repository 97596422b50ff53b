"""Building a missing platform root with real git and a stand-in drush (aegir-backend.md §3.2 step 1)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from aegir.drupal.build import build_platform
from aegir.drupal.scan import NotDrupalError, scan_platform
from aegir.errors import AegirError, InputError
from aegir.transport.local import LocalTransport

pytestmark = pytest.mark.integration

T = LocalTransport("localhost")
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def write(base: Path, rel: str, text: str = "") -> None:
    p = base / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)


def d7_tree(base: Path, version: str = "7.80") -> None:
    write(base, "index.php", "<?php\n")
    write(base, "includes/bootstrap.inc", f"<?php\ndefine('VERSION', '{version}');\n")
    write(base, "modules/system/system.info", "name = System\nversion = VERSION\ncore = 7.x\n")
    write(base, "modules/system/system.module", "<?php\n")
    write(base, "modules/system/system.install", "<?php\nfunction system_update_7080() {}\n")
    write(base, "sites/default/default.settings.php", "<?php\n")


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path) -> Path:
    """A repository: tag 7.80 (core 7.80), then main at 7.81, plus a branch "old" at the tag."""
    src = tmp_path / "src"
    src.mkdir()
    git("init", "-q", "-b", "main", cwd=src)
    d7_tree(src, "7.80")
    git("add", "-A", cwd=src)
    git("commit", "-q", "-m", "7.80", cwd=src)
    git("tag", "7.80", cwd=src)
    git("branch", "old", cwd=src)
    d7_tree(src, "7.81")
    git("commit", "-q", "-am", "7.81", cwd=src)
    return src


def core(root: Path) -> str:
    return scan_platform(T, str(root)).core_version


def test_clone_from_file_url(repo, tmp_path):
    root = tmp_path / "platforms" / "deep" / "d7"
    assert build_platform(T, root=str(root), makefile=None, git_url=f"file://{repo}", git_ref=None, drush=[]) == "git"
    assert core(root) == "7.81"
    assert stat.S_IMODE((root.parent).stat().st_mode) == 0o755
    # a second verify: nothing to do
    assert build_platform(T, root=str(root), makefile=None, git_url=f"file://{repo}", git_ref=None, drush=[]) == (
        "exists"
    )


@pytest.mark.parametrize(
    "ref,expected,branch", [("7.80", "7.80", "HEAD"), ("old", "7.80", "old"), ("main", "7.81", "main")]
)
def test_clone_from_plain_path_with_ref(repo, tmp_path, ref, expected, branch):
    root = tmp_path / "p"
    assert build_platform(T, root=str(root), makefile=None, git_url=str(repo), git_ref=ref, drush=[]) == "git"
    assert core(root) == expected
    assert git("rev-parse", "--abbrev-ref", "HEAD", cwd=root).strip() == branch
    assert git("status", "--porcelain", cwd=root).strip() == ""


def test_clone_at_a_commit(repo, tmp_path):
    sha = git("rev-parse", "7.80^{commit}", cwd=repo).strip()
    root = tmp_path / "p"
    build_platform(T, root=str(root), makefile=None, git_url=str(repo), git_ref=sha, drush=[])
    assert core(root) == "7.80"


def test_bad_url_leaves_nothing(tmp_path):
    root = tmp_path / "p"
    with pytest.raises(AegirError) as exc:
        build_platform(T, root=str(root), makefile=None, git_url=f"file://{tmp_path}/nope", git_ref=None, drush=[])
    assert "nope" in str(exc.value) and "git exit code" in str(exc.value)
    assert not root.exists()


def test_bad_ref_leaves_nothing(repo, tmp_path):
    root = tmp_path / "p"
    with pytest.raises(AegirError, match="no-such-ref"):
        build_platform(T, root=str(root), makefile=None, git_url=str(repo), git_ref="no-such-ref", drush=[])
    assert not root.exists()


def test_ref_that_looks_like_an_option_is_refused(repo, tmp_path):
    with pytest.raises(InputError) as exc:
        build_platform(T, root=str(tmp_path / "p"), makefile=None, git_url=str(repo), git_ref="--upload-pack=x")
    assert exc.value.field == "git_ref"


def test_credentials_in_url_are_not_shown(tmp_path):
    with pytest.raises(AegirError) as exc:
        build_platform(
            T,
            root=str(tmp_path / "p"),
            makefile=None,
            git_url="http://user:s3cret@127.0.0.1:9/repo.git",
            git_ref=None,
            drush=[],
        )
    assert "s3cret" not in str(exc.value)


def test_clone_of_something_else_is_removed(tmp_path):
    src = tmp_path / "notdrupal"
    src.mkdir()
    git("init", "-q", "-b", "main", cwd=src)
    write(src, "README", "hi")
    git("add", "-A", cwd=src)
    git("commit", "-q", "-m", "x", cwd=src)
    root = tmp_path / "p"
    with pytest.raises(AegirError, match="not a Drupal codebase"):
        build_platform(T, root=str(root), makefile=None, git_url=str(src), git_ref=None, drush=[])
    assert not root.exists()


def fake_drush(tmp_path: Path, body: str) -> str:
    script = tmp_path / "bin" / "drush"
    write(tmp_path, "bin/drush", "#!/bin/sh\n" + body)
    script.chmod(0o755)
    return str(script)


MAKE_OK = """[ "$1" = make ] || { echo "usage: drush make MAKEFILE ROOT" >&2; exit 1; }
[ -f "$2" ] || { echo "no makefile $2" >&2; exit 1; }
cp -R ./tree "$3"   # relative: the build runs in the makefile's directory
"""

MAKE_FAIL = """mkdir -p "$3/modules"   # half-built
echo "Unable to download drupal-7.80.tar.gz: 404" >&2
exit 1
"""


def makefile_dir(tmp_path: Path) -> Path:
    mk = tmp_path / "make"
    d7_tree(mk / "tree")
    write(mk, "platform.make", "core = 7.x\napi = 2\nprojects[drupal][version] = 7.80\n")
    return mk


def test_build_from_makefile(tmp_path):
    mk = makefile_dir(tmp_path)
    drush = fake_drush(tmp_path, MAKE_OK)
    root = tmp_path / "platforms" / "made"
    result = build_platform(
        T, root=str(root), makefile=str(mk / "platform.make"), git_url="file:///unused", git_ref=None, drush=[drush]
    )
    assert result == "makefile" and core(root) == "7.80"
    assert (
        build_platform(T, root=str(root), makefile=str(mk / "platform.make"), git_url=None, git_ref=None, drush=[drush])
        == "exists"
    )


def test_failed_make_is_removed_and_reports_stderr(tmp_path):
    mk = makefile_dir(tmp_path)
    drush = fake_drush(tmp_path, MAKE_FAIL)
    root = tmp_path / "platforms" / "made"
    with pytest.raises(AegirError) as exc:
        build_platform(T, root=str(root), makefile=str(mk / "platform.make"), git_url=None, git_ref=None, drush=[drush])
    assert "Unable to download drupal-7.80.tar.gz: 404" in str(exc.value) and "exit code 1" in str(exc.value)
    assert not root.exists()


def test_missing_makefile_is_an_input_error(tmp_path):
    with pytest.raises(InputError) as exc:
        build_platform(
            T,
            root=str(tmp_path / "p"),
            makefile=str(tmp_path / "nope.make"),
            git_url=None,
            git_ref=None,
            drush=["drush"],
        )
    assert exc.value.field == "makefile" and not (tmp_path / "p").exists()
    deeper = tmp_path / "new" / "p"
    with pytest.raises(InputError):
        build_platform(T, root=str(deeper), makefile="relative.make", git_url=None, git_ref=None, drush=["drush"])
    assert not deeper.parent.exists()  # refused before anything was created


def test_neither_makefile_nor_git_url(tmp_path):
    root = tmp_path / "p"
    with pytest.raises(InputError) as exc:
        build_platform(T, root=str(root), makefile=None, git_url=None, git_ref=None, drush=["drush"])
    assert exc.value.field == "root" and exc.value.exit_code == 2
    assert str(root) in str(exc.value) and "makefile" in str(exc.value) and "git_url" in str(exc.value)
    assert not root.exists()


def test_existing_root_that_is_not_drupal(tmp_path, repo):
    root = tmp_path / "p"
    root.mkdir()
    with pytest.raises(NotDrupalError, match="already exists"):
        build_platform(T, root=str(root), makefile=None, git_url=str(repo), git_ref=None, drush=[])
    assert root.exists() and list(root.iterdir()) == []  # left as it was


def test_existing_composer_root_is_left_alone(tmp_path):
    root = tmp_path / "p"
    write(root, "web/index.php")
    write(root, "web/core/lib/Drupal.php", "<?php class Drupal { const VERSION = '10.2.3'; }")
    assert build_platform(T, root=str(root), makefile=None, git_url=None, git_ref=None, drush=[]) == "exists"


def test_build_and_scan_over_ssh(ssh_transport, repo, tmp_path):
    """The same build and the same one-command scan through the SSH transport."""
    root = tmp_path / "over-ssh" / "d7"
    write(repo, "sites/example.com/settings.php", "<?php\n")
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "site", cwd=repo)
    assert build_platform(ssh_transport, root=str(root), git_url=f"file://{repo}", git_ref="main") == "git"
    remote = scan_platform(ssh_transport, str(root))
    local = scan_platform(T, str(root))
    assert remote == local
    assert remote.core_version == "7.81" and remote.sites == ["example.com"]
    assert [(p.name, p.schema_version) for p in remote.packages] == [("system", 7080)]
    with pytest.raises(NotDrupalError, match="does not exist"):
        scan_platform(ssh_transport, str(tmp_path / "missing"))


def test_a_dropped_connection_stays_transient_and_hides_credentials(tmp_path):
    from aegir.transport.base import TransportConnectionError

    class Dropping(LocalTransport):
        def run(self, argv, **kw):
            raise TransportConnectionError("connection lost", command=list(argv), host=self.host)

    with pytest.raises(TransportConnectionError) as exc:
        build_platform(
            Dropping("web1"), root=str(tmp_path / "p"), git_url="https://u:t0ken@example.com/r.git", git_ref=None
        )
    assert exc.value.transient and "t0ken" not in str(exc.value) and "example.com" in str(exc.value)
    assert not (tmp_path / "p").exists()
