"""The ``aegir`` CLI: property parsing, secret sources, save/show/list/--delete exit codes, no Prefect import."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import aegir.cli as cli
from aegir.cli import parse_properties
from aegir.contexts import PlatformContext, ServerContext, build
from tests.unit.fakes import MemoryStore, raises_input

ROOT = Path(__file__).resolve().parents[2]
DB_PASSWORD = "Cl1-s3cret-pw"
SSH_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAcli-key\n-----END OPENSSH PRIVATE KEY-----\n"


# ------------------------------------------------------------------------------------------------------
# parse_properties
# ------------------------------------------------------------------------------------------------------
def test_key_equals_value():
    assert parse_properties(["--http_port=8080", "--remote_host=web1.example.com"]) == {
        "http_port": "8080",
        "remote_host": "web1.example.com",
    }


def test_key_space_value():
    assert parse_properties(["--http_port", "8080", "--root", "/var/x"]) == {"http_port": "8080", "root": "/var/x"}


def test_value_with_equals_and_empty_value():
    assert parse_properties(["--http_restart_cmd=sudo env A=b reload", "--admin_email="]) == {
        "http_restart_cmd": "sudo env A=b reload",
        "admin_email": "",
    }


def test_null_passes_through():
    assert parse_properties(["--http_port=null"]) == {"http_port": "null"}


def test_no_args():
    assert parse_properties([]) == {}


def test_key_without_value():
    raises_input(lambda: parse_properties(["--http_port"]), "http_port", "needs a value", "--http_port=VALUE")
    raises_input(lambda: parse_properties(["--http_port", "--root=/x"]), "http_port", "needs a value")


@pytest.mark.parametrize("token", ["http_port=80", "-p", "--", "@server_master", "80"])
def test_non_option_token(token):
    raises_input(lambda: parse_properties([token]), token, "--property=value")


def test_stray_value_after_a_pair():
    raises_input(lambda: parse_properties(["--http_port=80", "81"]), "81", "--property=value")


def test_secret_on_command_line_warns(capsys):
    assert parse_properties([f"--db_password={DB_PASSWORD}"]) == {"db_password": DB_PASSWORD}
    err = capsys.readouterr().err
    assert "warning" in err and "--db_password-file" in err
    assert DB_PASSWORD not in err


def test_secret_file_strips_trailing_newline(tmp_path):
    f = tmp_path / "pw"
    f.write_text(f"{DB_PASSWORD}\n")
    assert parse_properties([f"--db_password-file={f}"]) == {"db_password": DB_PASSWORD}
    f.write_text(f" {DB_PASSWORD} \r\n")  # only the line end goes, not the spaces
    assert parse_properties(["--db_password-file", str(f)]) == {"db_password": f" {DB_PASSWORD} "}
    f.write_text(DB_PASSWORD)
    assert parse_properties([f"--db_password-file={f}"]) == {"db_password": DB_PASSWORD}


def test_secret_file_does_not_warn(tmp_path, capsys):
    f = tmp_path / "pw"
    f.write_text(DB_PASSWORD)
    parse_properties([f"--db_password-file={f}"])
    assert capsys.readouterr().err == ""


def test_ssh_key_file_keeps_content(tmp_path):
    f = tmp_path / "id_ed25519"
    f.write_text(SSH_KEY)
    assert parse_properties([f"--ssh_private_key-file={f}"]) == {"ssh_private_key": SSH_KEY}


def test_secret_file_missing_or_without_path(tmp_path):
    missing = tmp_path / "nope"
    e = raises_input(lambda: parse_properties([f"--db_password-file={missing}"]), "db_password-file", "cannot read")
    assert str(missing) in e.message
    raises_input(lambda: parse_properties(["--db_password-file"]), "db_password-file", "needs a path")
    raises_input(lambda: parse_properties(["--db_password-file="]), "db_password-file", "needs a path")


def test_secret_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{DB_PASSWORD}\n"))
    assert parse_properties(["--db_password-stdin", "--db_user=root"]) == {
        "db_password": DB_PASSWORD,
        "db_user": "root",
    }


def test_ssh_key_stdin_keeps_content(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(SSH_KEY))
    assert parse_properties(["--ssh_private_key-stdin"]) == {"ssh_private_key": SSH_KEY}


def test_secret_prompt(monkeypatch):
    prompts = []
    monkeypatch.setattr(cli.getpass, "getpass", lambda prompt: prompts.append(prompt) or DB_PASSWORD)
    assert parse_properties(["--db_password-prompt"]) == {"db_password": DB_PASSWORD}
    assert prompts == ["db_password: "]


@pytest.mark.parametrize("token", ["--root-file=/etc/passwd", "--http_port-stdin", "--db_user-prompt"])
def test_secret_sources_only_for_secrets(token):
    key = token[2:].split("=")[0]
    e = raises_input(lambda: parse_properties([token]), key, "only for secret properties")
    assert "db_password" in e.message and "ssh_private_key" in e.message


# ------------------------------------------------------------------------------------------------------
# commands against a MemoryStore
# ------------------------------------------------------------------------------------------------------
@pytest.fixture
def store(monkeypatch) -> MemoryStore:
    monkeypatch.delenv("AEGIR_ROOT", raising=False)
    s = MemoryStore()
    monkeypatch.setattr(cli, "_store", lambda: s)
    return s


@pytest.fixture
def seeded(store) -> MemoryStore:
    """@server_master (nginx + mysql), @server_bare (no services), @platform_d10 on master."""
    store.add(
        build(
            ServerContext,
            {
                "name": "@server_master",
                "http_service_type": "nginx",
                "db_service_type": "mysql",
                "db_user": "root",
                "db_password": DB_PASSWORD,
            },
        ),
        build(ServerContext, {"name": "@server_bare"}),
        build(PlatformContext, {"name": "@platform_d10", "root": "/var/aegir/platforms/d10"}),
    )
    return store


def aegir(*args: str, input: str | None = None):
    return CliRunner().invoke(cli.app, list(args), input=input)


def assert_refused(store: MemoryStore, args: list[str], code: int, *fragments: str) -> str:
    before = store.snapshot()
    result = aegir(*args)
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("aegir: warning: ")]
    assert len(lines) == 1 and lines[0].startswith("aegir: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    assert store.writes == [] and store.snapshot() == before
    assert result.stdout == ""
    return lines[0]


def test_save_then_show(store, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(DB_PASSWORD + "\n")
    result = aegir(
        "save",
        "@server_master",
        "--context_type=server",
        "--http_service_type=nginx",
        "--http_port",
        "8080",
        "--db_service_type=mysql",
        "--db_user=root",
        f"--db_password-file={pw}",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "Created server @server_master (block aegir-server/server-master)\n"
    assert store.find("@server_master").db_password.get_secret_value() == DB_PASSWORD

    result = aegir("save", "@server_master", "--http_port=8081")
    assert result.exit_code == 0 and result.stdout.startswith("Updated server @server_master")
    assert store.find("@server_master").http_port == 8081

    result = aegir("show", "@server_master")
    assert result.exit_code == 0, result.output
    rows = dict(line.split(None, 1) for line in result.stdout.splitlines())
    assert rows["name"] == "@server_master"
    assert rows["db_password"] == "********"
    assert rows["ssh_private_key"] == "-"
    assert rows["http_port"] == "8081"
    assert rows["config_path"] == "/var/aegir/config/server_master"
    assert DB_PASSWORD not in result.output


def test_save_secret_from_stdin(store):
    result = aegir(
        "save",
        "@server_db",
        "--context_type=server",
        "--db_service_type=mysql",
        "--db_user=root",
        "--db_password-stdin",
        input=DB_PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.output
    assert store.find("@server_db").db_password.get_secret_value() == DB_PASSWORD
    assert DB_PASSWORD not in result.output


def test_show_json(seeded):
    result = aegir("show", "server_master", "--json")
    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    assert view["name"] == "@server_master" and view["context_type"] == "server"
    assert view["db_password"] == "********" and view["ssh_private_key"] is None
    assert view["http_port"] == 80
    assert DB_PASSWORD not in result.output


def test_show_unknown(seeded):
    assert_refused(seeded, ["show", "@nope"], 3, "@nope", "no such context")


def test_show_invalid_name(seeded):
    assert_refused(seeded, ["show", "@bad name"], 2, "name:")


def test_list(seeded):
    result = aegir("list", "--type=server")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["@server_bare", "@server_master"]
    assert "http=nginx db=mysql" in lines[1]
    assert "@platform_d10" not in result.stdout

    result = aegir("list")
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        "@platform_d10",
        "@server_bare",
        "@server_master",
    ]
    assert DB_PASSWORD not in result.output


def test_list_json(seeded):
    result = aegir("list", "--json", "--type", "server")
    assert result.exit_code == 0, result.output
    views = json.loads(result.stdout)
    assert [v["name"] for v in views] == ["@server_bare", "@server_master"]
    assert views[1]["db_password"] == "********"
    assert DB_PASSWORD not in result.output


def test_list_empty(store):
    result = aegir("list")
    assert result.exit_code == 0 and "No contexts yet" in result.stdout


def test_list_bogus_type(seeded):
    assert_refused(seeded, ["list", "--type=bogus"], 2, "type:", "server, platform or site")


BAD_SAVES = [
    # unknown context
    pytest.param(["save", "@nope", "--delete"], 3, ["@nope", "no such context"], id="delete-unknown"),
    pytest.param(["save", "@server_new", "--http_port=81"], 2, ["context_type:"], id="new-without-type"),
    # wrong context type for a reference
    pytest.param(
        ["save", "@platform_x", "--context_type=platform", "--root=/x", "--web_server=@platform_d10"],
        2,
        ["web_server:", "is a platform, not a server"],
        id="web_server-is-platform",
    ),
    pytest.param(
        ["save", "@example.com", "--context_type=site", "--platform=@server_master"],
        2,
        ["platform:", "is a server, not a platform"],
        id="platform-is-server",
    ),
    pytest.param(
        ["save", "@platform_x", "--context_type=platform", "--root=/x", "--web_server=@server_bare"],
        2,
        ["web_server:", "no http service"],
        id="web_server-without-http",
    ),
    pytest.param(
        ["save", "@example.com", "--context_type=site", "--platform=@platform_d10", "--db_server=@server_bare"],
        2,
        ["db_server:", "no db service"],
        id="db_server-without-db",
    ),
    # --uri='a.com;rm -rf /'
    pytest.param(
        ["save", "@example.com", "--context_type=site", "--platform=@platform_d10", "--uri=a.com;rm -rf /"],
        2,
        ["uri:", "hostname"],
        id="uri-injection",
    ),
    pytest.param(
        ["save", "@a.com;rm -rf /", "--context_type=site", "--platform=@platform_d10"],
        2,
        ["name:", "not a valid context name"],
        id="name-injection",
    ),
    pytest.param(
        ["save", "@server_master", "--remote_host", "a.com;rm -rf /"],
        2,
        ["remote_host:", "hostname"],
        id="remote_host-injection",
    ),
    # --root=relative/path
    pytest.param(
        ["save", "@platform_x", "--context_type=platform", "--root=relative/path"],
        2,
        ["root:", "absolute path"],
        id="relative-root",
    ),
    pytest.param(
        ["save", "@platform_d10", "--root=relative/path"], 2, ["root:", "absolute path"], id="relative-root-update"
    ),
    # --http_port=0
    pytest.param(["save", "@server_master", "--http_port=0"], 2, ["http_port:", "1 to 65535"], id="port-0"),
    pytest.param(["save", "@server_master", "--http_port=65536"], 2, ["http_port:", "1 to 65535"], id="port-65536"),
    # --http_service_type=lighttpd
    pytest.param(
        ["save", "@server_master", "--http_service_type=lighttpd"],
        2,
        ["http_service_type:", "nginx", "apache", "null"],
        id="lighttpd",
    ),
    # a password on a context that has no db service
    pytest.param(
        ["save", "@server_bare", "--db_password-stdin"],
        2,
        ["db_password:", "no db service"],
        id="password-no-db",
    ),
    pytest.param(
        ["save", "@server_new", "--context_type=server", "--db_password=x"],
        2,
        ["db_password:", "no db service"],
        id="password-new-server",
    ),
    pytest.param(
        ["save", "@platform_d10", "--db_password=x"],
        2,
        ["db_password:", "unknown property"],
        id="password-platform",
    ),
    # saving a site whose platform does not exist
    pytest.param(
        ["save", "@example.com", "--context_type=site", "--platform=@platform_nope"],
        2,
        ["platform:", "@platform_nope does not exist"],
        id="site-platform-missing",
    ),
    pytest.param(
        ["save", "@example.com", "--context_type=site"],
        2,
        ["platform:", "is required"],
        id="site-platform-not-given",
    ),
    # --delete of a server that platforms still use
    pytest.param(
        ["save", "@server_master", "--delete"],
        2,
        ["delete:", "still used by @platform_d10"],
        id="delete-used-server",
    ),
    pytest.param(
        ["save", "@server_bare", "--delete", "--http_port=1"],
        2,
        ["delete:", "takes no properties"],
        id="delete-with-properties",
    ),
    # other input errors
    pytest.param(
        ["save", "@server_master", "--http_prot=80"], 2, ["http_prot:", "unknown property"], id="unknown-prop"
    ),
    pytest.param(["save", "@server_master", "--verified=now"], 2, ["verified:", "managed"], id="managed"),
    pytest.param(["save", "@server_master", "--http_port"], 2, ["http_port:", "needs a value"], id="no-value"),
    pytest.param(["save", "@server_master", "--root-file=/etc/hostname"], 2, ["root-file:", "secret"], id="root-file"),
    pytest.param(["save", "@server_master", "--context_type=site"], 2, ["context_type:", "cannot become"], id="retype"),
    pytest.param(["save", "@server.master", "--context_type=server"], 2, ["name:", "block name"], id="slug-clash"),
]


@pytest.mark.parametrize(("args", "code", "fragments"), BAD_SAVES)
def test_bad_save_exits_nonzero_and_changes_nothing(seeded, monkeypatch, args, code, fragments):
    monkeypatch.setattr(sys, "stdin", io.StringIO(DB_PASSWORD))
    line = assert_refused(seeded, args, code, *fragments)
    assert DB_PASSWORD not in line


def test_delete(seeded):
    result = aegir("save", "@server_bare", "--delete")
    assert result.exit_code == 0, result.output
    assert result.stdout == "Deleted server @server_bare\n"
    assert seeded.writes == [("remove", "@server_bare")]
    assert seeded.find("@server_bare") is None


def test_help_for_every_command():
    for args in (
        ["--help"],
        ["save", "--help"],
        ["show", "--help"],
        ["list", "--help"],
        ["verify", "--help"],
        ["server", "--help"],
        ["server", "start", "--help"],
    ):
        result = aegir(*args)
        assert result.exit_code == 0, (args, result.output)
        assert "Usage" in result.output


# ------------------------------------------------------------------------------------------------------
# no Prefect on the fast path
# ------------------------------------------------------------------------------------------------------
def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_importing_cli_does_not_import_prefect():
    code = (
        "import sys, aegir.cli; aegir.cli.app; "
        "assert not any(m == 'prefect' or m.startswith('prefect.') for m in sys.modules), "
        "[m for m in sys.modules if m.startswith('prefect')][:5]"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr


def test_aegir_help_script():
    script = Path(sys.executable).with_name("aegir")
    exe = str(script) if script.exists() else shutil.which("aegir")
    assert exe, "the aegir console script is not installed"
    proc = subprocess.run([exe, "--help"], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "save" in proc.stdout and "list" in proc.stdout
