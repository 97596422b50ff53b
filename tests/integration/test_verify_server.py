"""verify-server against real MariaDB, nginx, apache and sshd, through a real Prefect API."""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pymysql
import pytest

from aegir import registry
from tests.integration.helpers import flow_run, flow_run_logs, unique

pytestmark = pytest.mark.integration


def run_verify(name: str):
    from flows.verify_server import verify_server

    return verify_server(server=name, return_state=True)


def assert_no_secret(prefect_api, state, secret: str) -> None:
    run_id = state.state_details.flow_run_id
    run = flow_run(prefect_api.url, run_id)
    assert secret not in str(run["parameters"])
    assert secret not in flow_run_logs(prefect_api.url, run_id)
    assert secret not in (state.message or "")


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_verify_local_nginx_and_mysql(store, prefect_api, nginx_server, db_admin):
    name = unique("@server_ng")
    registry.save(store, name, "server", {**nginx_server.server_fields(), **db_admin})
    state = run_verify(name)
    assert state.is_completed(), state.message
    server = registry.load_server(store, name)
    root = nginx_server.aegir_root
    # 2. directories with Aegir's modes
    assert mode(root + "/config") == 0o711
    assert mode(server.config_path) == 0o711
    assert mode(root + "/clients") == 0o711
    assert mode(root + "/backups") == 0o700
    assert Path(root, "config/includes/global.inc").exists()
    # 3. db service recorded, its probe database and user cleaned up
    assert server.db_version and "MariaDB" in server.db_version
    with pymysql.connect(host="127.0.0.1", user="root", password="") as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'aegir\\_verify\\_%'")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT COUNT(*) FROM mysql.user WHERE User LIKE 'aegir\\_verify\\_%'")
        assert cur.fetchone()[0] == 0
    # 4. http service: server conf linked where the web server includes it, reloaded, our catch-all answers
    conf = Path(root, "config", "nginx.conf")
    assert conf.is_symlink() and os.readlink(conf) == f"{server.config_path}/nginx.conf"
    text = conf.read_text()
    assert text.index("pre.d") < text.index("vhost.d") < text.index("platform.d") < text.index("post.d")
    nginx_server.wait_for("unknown.example", status=404)
    assert server.http_version and "nginx" in server.http_version
    # 5. verified recorded; secrets never in parameters, logs or the state message
    assert server.verified is not None
    assert_no_secret(prefect_api, state, db_admin["db_password"])
    # idempotent
    assert run_verify(name).is_completed()


def test_verify_apache(store, apache_server, db_admin):
    name = unique("@server_ap")
    fields = {k: v for k, v in apache_server.server_fields().items() if k != "php_fpm_socket"}
    registry.save(store, name, "server", {**fields, **db_admin})
    state = run_verify(name)
    assert state.is_completed(), state.message
    server = registry.load_server(store, name)
    # apache runs PHP through php-fpm (proxy_fcgi) too: without a socket it would serve PHP source
    assert (
        server.php_fpm_socket
        and server.php_fpm_socket.endswith("fpm.sock")
        or server.php_fpm_socket == ("127.0.0.1:9000")
    )
    assert Path(apache_server.aegir_root, "config", "apache.conf").is_symlink()
    apache_server.wait_for("unknown.example", status=404)
    assert server.http_version and "Apache" in server.http_version


OS_DEFAULT_SITE = {
    # Debian's nginx sites-enabled/default: the explicit default server of the port
    "nginx": """server {{
    listen *:{port} default_server;
    server_name _;
    root {docroot};
}}
""",
    # Debian's apache 000-default, where it comes before Aegir's conf: the port's first vhost is its default
    "apache": """<VirtualHost *:{port}>
    ServerName os-default.invalid
    DocumentRoot {docroot}
    <Directory {docroot}>
        Require all granted
    </Directory>
</VirtualHost>
""",
}


@pytest.mark.parametrize("kind", ["nginx", "apache"])
def test_an_os_default_site_answering_unknown_names_fails_the_verify_and_names_it(request, store, db_admin, kind):
    """Issue 16, finding 2: a deleted or renamed site's old name was answered 200 by Debian's default site.
    The catch-all must be the default server of the port: verify-server proves a name no site has gets 404,
    and names the OS default site when it does not (nginx: its config test refuses two default servers)."""
    web = request.getfixturevalue(f"{kind}_server")
    fields = web.server_fields()
    if kind == "apache":
        fields = {k: v for k, v in fields.items() if k != "php_fpm_socket"}
    name = unique(f"@server_dflt{kind[:2]}")
    registry.save(store, name, "server", {**fields, **db_admin})
    assert run_verify(name).is_completed()
    docroot = Path(tempfile.mkdtemp(prefix="aegir-test-os-default-"))  # where the web server's user can read
    docroot.chmod(0o755)
    (docroot / "index.html").write_text("<html><title>Apache2 Debian Default Page: It works</title></html>\n")
    (docroot / "index.html").chmod(0o644)
    foreign = Path(web.aegir_root, "config", f"{kind}-000-default.conf")  # included before Aegir's conf
    foreign.write_text(OS_DEFAULT_SITE[kind].format(port=web.port, docroot=docroot))
    try:
        if kind == "apache":
            subprocess.run(web.restart_cmd, shell=True, check=True)
        state = run_verify(name)
        assert state.is_failed()
        if kind == "nginx":
            assert "another site claims the default server of port" in state.message, state.message
        else:
            assert "a name no site has gets HTTP 200 'Apache2 Debian Default Page: It works'" in state.message
            assert "a2dissite 000-default" in state.message, state.message
    finally:
        foreign.unlink()
        shutil.rmtree(docroot)
        subprocess.run(web.restart_cmd, shell=True, check=True)
    assert run_verify(name).is_completed()
    web.wait_for("unknown.example", status=404)


def test_verify_null_services(store, tmp_path):
    name = unique("@server_null")
    registry.save(store, name, "server", {"aegir_root": str(tmp_path / "aegir")})
    state = run_verify(name)
    assert state.is_completed(), state.message
    assert (tmp_path / "aegir" / "config" / name[1:]).is_dir()
    server = registry.load_server(store, name)
    assert server.http_version is None and server.db_version is None and server.verified is not None


def test_verify_over_ssh(store, prefect_api, sshd, nginx_server, db_admin):
    name = unique("@server_ssh")
    ssh = {
        "remote_host": "127.0.0.1",
        "transport": "ssh",
        "ssh_port": sshd.port,
        "ssh_user": sshd.user,
        "ssh_private_key": sshd.client_private_key,
        "ssh_host_key": sshd.host_public_key,
    }
    registry.save(store, name, "server", {**nginx_server.server_fields(), **db_admin, **ssh})
    state = run_verify(name)
    assert state.is_completed(), state.message
    server = registry.load_server(store, name)
    assert Path(server.config_path, "nginx.conf").exists()
    assert os.readlink(Path(nginx_server.aegir_root, "config", "nginx.conf")) == f"{server.config_path}/nginx.conf"
    nginx_server.wait_for("unknown.example", status=404)
    assert_no_secret(prefect_api, state, "PRIVATE KEY")


def test_wrong_db_password_names_user_host_port_never_the_password(store, prefect_api, tmp_path, db_admin):
    name = unique("@server_badpw")
    wrong = "Wr0ng-" + secrets.token_hex(6)
    registry.save(store, name, "server", {**db_admin, "db_password": wrong, "aegir_root": str(tmp_path)})
    state = run_verify(name)
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert db_admin["db_user"] in message and "127.0.0.1:3306" in message and "access denied" in message
    assert wrong not in message
    assert_no_secret(prefect_api, state, wrong)


def test_unreachable_sshd_is_a_clear_error(store, tmp_path, sshd):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    name = unique("@server_down")
    registry.save(
        store,
        name,
        "server",
        {"remote_host": "127.0.0.1", "transport": "ssh", "ssh_port": closed_port, "ssh_host_key": sshd.host_public_key},
    )
    state = run_verify(name)
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert f"127.0.0.1:{closed_port}" in message and "reach" in message


def test_changed_host_key_is_refused(store, sshd, tmp_path):
    key_path = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_path)], check=True)
    other_key = " ".join((key_path.with_suffix(".pub")).read_text().split()[:2])
    name = unique("@server_mitm")
    registry.save(
        store,
        name,
        "server",
        {
            "remote_host": "127.0.0.1",
            "transport": "ssh",
            "ssh_port": sshd.port,
            "ssh_user": sshd.user,
            "ssh_private_key": sshd.client_private_key,
            "ssh_host_key": other_key,
            "aegir_root": str(tmp_path / "aegir"),
        },
    )
    state = run_verify(name)
    assert state.is_failed()
    assert "changed" in str(state.result(raise_on_failure=False)).lower()
    assert not (tmp_path / "aegir").exists()


def test_failing_config_test_restores_previous_conf(store, nginx_server, db_admin):
    name = unique("@server_cfg")
    registry.save(store, name, "server", {**nginx_server.server_fields()})
    assert run_verify(name).is_completed()
    server = registry.load_server(store, name)
    conf = Path(server.config_path, "nginx.conf")
    before = conf.read_text()
    # the operator changes the port and someone dropped a broken file into pre.d: the config test fails
    registry.save(store, name, None, {"http_port": str(nginx_server.port + 1)})
    broken = Path(server.config_path, "nginx", "pre.d", "broken.conf")
    broken.write_text("this is not nginx syntax\n")
    try:
        state = run_verify(name)
        assert state.is_failed()
        message = str(state.result(raise_on_failure=False))
        assert "config" in message.lower() and "broken.conf" in message
        assert conf.read_text() == before  # previous server conf restored
    finally:
        broken.unlink()
    nginx_server.wait_for("unknown.example", status=404)
