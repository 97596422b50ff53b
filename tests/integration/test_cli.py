"""The aegir command as a user runs it, against a real Prefect API: contexts, bad input, verify."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.helpers import aegir, unique

pytestmark = pytest.mark.integration

PREFECT = str(Path(sys.executable).with_name("prefect"))


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], field: str, code: int = 2) -> str:
    """A clear one-line error naming the field, with a non-zero exit."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("aegir:") and "aegir: warning:" not in ln]
    assert len(lines) == 1 and field in lines[0], result.stderr
    return lines[0]


@pytest.fixture
def env(prefect_api):
    return prefect_api.env


@pytest.fixture
def world(env, tmp_path):
    """A server with http+db, a platform on it; names unique to this test."""
    server, platform = unique("@server_cli"), unique("@platform_cli")
    ok(
        aegir(
            env,
            "save",
            server,
            "--context_type=server",
            "--http_service_type=nginx",
            "--db_service_type=mysql",
            "--db_user=root",
            "--db_password=",
            f"--aegir_root={tmp_path}/aegir",
        )
    )
    ok(aegir(env, "save", platform, "--context_type=platform", f"--root={tmp_path}/platform", f"--web_server={server}"))
    return {"server": server, "platform": platform}


def listing(env) -> list[dict]:
    return json.loads(ok(aegir(env, "list", "--json")))


def test_save_show_list_delete_roundtrip(env, world):
    site = unique("s") + ".example.com"
    out = ok(
        aegir(
            env,
            "save",
            f"@{site}",
            "--context_type=site",
            f"--platform={world['platform']}",
            f"--db_server={world['server']}",
            "--client_email=owner@example.com",
        )
    )
    assert f"Created site @{site}" in out
    shown = json.loads(ok(aegir(env, "show", f"@{site}", "--json")))
    assert shown["uri"] == site and shown["platform"] == world["platform"] and shown["status"] == "new"
    # update only the given property
    ok(aegir(env, "save", f"@{site}", "--profile=minimal"))
    shown2 = json.loads(ok(aegir(env, "show", f"@{site}", "--json")))
    assert shown2["profile"] == "minimal" and shown2["client_email"] == "owner@example.com"
    names = {c["name"] for c in listing(env)}
    assert {f"@{site}", world["server"], world["platform"]} <= names
    assert world["server"] in ok(aegir(env, "list", "--type=server"))
    # the contexts are Prefect blocks
    blocks = subprocess.run([PREFECT, "block", "ls"], env=env, capture_output=True, text=True, timeout=120)
    assert blocks.returncode == 0, blocks.stderr
    assert "aegir-site" in blocks.stdout and "aegir-server" in blocks.stdout
    ok(aegir(env, "save", f"@{site}", "--delete"))
    assert f"@{site}" not in {c["name"] for c in listing(env)}


def test_secrets_from_stdin_and_file_are_masked(env, tmp_path):
    name = unique("@server_sec")
    secret = "Pw-" + unique("x")
    out = aegir(
        env,
        "save",
        name,
        "--context_type=server",
        "--db_service_type=mysql",
        "--db_user=admin",
        "--db_password-stdin",
        stdin=secret + "\n",
    )
    ok(out)
    assert secret not in out.stdout + out.stderr
    for args in (("show", name), ("show", name, "--json"), ("list", "--json")):
        text = ok(aegir(env, *args))
        assert secret not in text
    assert "********" in ok(aegir(env, "show", name))
    key_file = tmp_path / "key"
    key_file.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n")
    ok(aegir(env, "save", name, f"--ssh_private_key-file={key_file}"))
    assert "abc" not in ok(aegir(env, "show", name, "--json"))


BAD_INPUTS = [
    # (description, argv after 'save', field named in the error, exit code)
    ("unknown property", ["@server_bad1", "--context_type=server", "--colour=blue"], "colour", 2),
    ("site uri with shell", ["@bad.example.com", "--context_type=site", "--uri=a.com;rm -rf /"], "uri", 2),
    ("relative root", ["@platform_bad", "--context_type=platform", "--root=relative/path"], "root", 2),
    ("port 0", ["@server_bad2", "--context_type=server", "--http_port=0"], "http_port", 2),
    (
        "unknown web server",
        ["@server_bad3", "--context_type=server", "--http_service_type=lighttpd"],
        "http_service_type",
        2,
    ),
    ("password without db service", ["@server_bad4", "--context_type=server", "--db_password=x"], "db_password", 2),
]


@pytest.mark.parametrize(("what", "args", "field", "code"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_refused_and_changes_nothing(env, world, what, args, field, code):
    before = listing(env)
    refused(aegir(env, "save", *args), field, code)
    assert listing(env) == before


def test_bad_references_are_refused(env, world, tmp_path):
    before = listing(env)
    site = unique("r") + ".example.com"
    # a site whose platform does not exist
    refused(aegir(env, "save", f"@{site}", "--context_type=site", "--platform=@platform_missing"), "platform")
    # wrong context type for a reference
    refused(aegir(env, "save", f"@{site}", "--context_type=site", f"--platform={world['server']}"), "platform")
    refused(
        aegir(
            env,
            "save",
            unique("@platform_x"),
            "--context_type=platform",
            f"--root={tmp_path}/p",
            f"--web_server={world['platform']}",
        ),
        "web_server",
    )
    # a db server without db service
    nodb = unique("@server_nodb")
    ok(aegir(env, "save", nodb, "--context_type=server"))
    before = listing(env)
    refused(
        aegir(env, "save", f"@{site}", "--context_type=site", f"--platform={world['platform']}", f"--db_server={nodb}"),
        "db_server",
    )
    assert listing(env) == before


def test_unknown_context(env):
    refused(aegir(env, "show", "@nothing-here.example"), "no such context", code=3)
    refused(aegir(env, "verify", "@server_nothing"), "no such context", code=3)


def test_delete_of_a_server_in_use_is_refused(env, world):
    line = refused(aegir(env, "save", world["server"], "--delete"), "delete")
    assert world["platform"] in line
    assert world["server"] in {c["name"] for c in listing(env)}


def test_verify_prints_the_flow_run_and_fails_with_one_line(env, tmp_path):
    name = unique("@server_v")
    ok(
        aegir(
            env,
            "save",
            name,
            "--context_type=server",
            "--db_service_type=mysql",
            "--db_user=root",
            "--db_password=",
            "--db_host=127.0.0.1",
            f"--aegir_root={tmp_path}/aegir",
        )
    )
    result = aegir(env, "verify", name)
    assert result.returncode == 0, result.stderr
    assert "Flow run verify-server" in result.stderr and "/runs/flow-run/" in result.stderr
    assert "MariaDB" in result.stdout
    shown = json.loads(ok(aegir(env, "show", name, "--json")))
    assert shown["verified"] and "MariaDB" in shown["db_version"]
    # a failing task: non-zero exit, one line reason, no traceback on the console
    ok(aegir(env, "save", name, "--db_user=nobody_here"))
    failed = aegir(env, "verify", name)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith("aegir: verify-server failed:") and "nobody_here" in last and "127.0.0.1:3306" in last


def test_no_reachable_api_says_how_to_start_one(prefect_api):
    env = {**prefect_api.env, "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    line = refused(aegir(env, "list"), "aegir server start", code=4)
    assert "127.0.0.1:9" in line
