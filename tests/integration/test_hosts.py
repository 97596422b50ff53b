"""The test hosts of issue #7 (tests/support/hosts.py): network namespaces with sshd, nginx + php-fpm and
MariaDB, reached from the root namespace (the master) by the product's own SSH transport and db client; each
host with its private view of the session's shared path (a mount namespace)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pymysql
import pytest

from aegir.contexts import ServerContext
from aegir.services.db import MysqlService
from aegir.services.http import http_service_for
from aegir.transport import HostKeyError, TransportConnectionError, TransportError
from aegir.transport.factory import transport_for
from aegir.transport.ssh import SSHTransport
from tests.support import hosts
from tests.support.hosts import (
    HostNetwork,
    NetnsHost,
    http_get,
    link_down,
    link_up,
    run_in,
    start_sshd,
    stop_sshd,
    wait_for_http,
)

pytest_plugins = ["tests.support.hosts"]
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def context(host: NetnsHost) -> ServerContext:
    return ServerContext(name=f"@{host.name}_{host.address.replace('.', '_')}", **host.server_fields())


def namespaces(pid: int | str) -> dict[str, str]:
    """The mount, UTS and network namespaces of process ``pid`` ("self" for this one)."""
    return {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in ("mnt", "uts", "net")}


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


# -- the hosts -----------------------------------------------------------------------------------------------
def test_hosts_have_their_own_namespace_address_and_tree(host_network: HostNetwork, web1_host, db1_host):
    assert {web1_host.name, db1_host.name} <= set(host_network.hosts)
    for host in (web1_host, db1_host):
        assert host.netns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        addr = run_in(host, ["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).stdout
        assert f"inet {host.address}/24" in addr
        assert run_in(host, ["hostname"]).stdout.strip() == host.name
        # one aegir_root string for the master and every host, under the shared path; each its own directory
        assert host.shared == host_network.shared and host.aegir_root == host_network.aegir_root
        assert host.aegir_root == str(host_network.shared / "aegir")
        assert host.master_path(host.aegir_root) == host.private / "aegir" and host.private.is_relative_to(host.dir)
        assert host.master_path(host.aegir_root).is_dir()
        assert run_in(host, ["test", "-d", host.aegir_root]).returncode == 0
    assert Path(host_network.aegir_root).is_dir()  # the master's own
    assert web1_host.address != db1_host.address
    assert web1_host.dir != db1_host.dir
    # the namespaces' loopbacks are their own: the machine's MariaDB on 127.0.0.1:3306 is not reachable there
    probe = "import socket; socket.create_connection(('127.0.0.1', 3306), 2)"
    assert run_in(web1_host, [sys.executable, "-c", probe], check=False).returncode != 0


def test_server_fields_are_a_valid_remote_server_context(host_network, web1_host, db1_host):
    web, db = context(web1_host), context(db1_host)
    assert web.aegir_root == db.aegir_root == host_network.aegir_root
    assert not web.is_local and not db.is_local
    assert web.http_service_type == "nginx" and web.http_port == 80 and web.web_group == "www-data"
    assert web.php_fpm_socket == web1_host.php_fpm_socket and web.aegir_root == web1_host.aegir_root
    assert db.db_service_type == "mysql" and db.db_address == db1_host.address and db.db_port == 3306
    assert isinstance(transport_for(web), SSHTransport)
    args = db1_host.save_args()
    assert "--context_type=server" in args and f"--remote_host={db1_host.address}" in args
    assert not any(db1_host.db_password in a or "PRIVATE KEY" in a for a in args)


# -- SSH -----------------------------------------------------------------------------------------------------
def test_ssh_transport_runs_commands_and_files_on_the_host(web1_host, db1_host):
    for host in (web1_host, db1_host):
        t = transport_for(context(host))
        try:
            assert t.run(["hostname"]).text.strip() == host.name
            assert f"inet {host.address}/" in t.run(["ip", "-4", "-o", "addr", "show", "dev", "eth0"]).text
            assert t.run(["id", "-un"]).text.strip() == "root"
            d = f"{host.aegir_root}/transport-check"
            t.makedirs(d, mode=0o750)
            t.write_file(f"{d}/hello.txt", f"hello from the master to {host.name}\n", mode=0o640)
            assert t.read_file(f"{d}/hello.txt") == f"hello from the master to {host.name}\n".encode()
            assert t.listdir(d) == ["hello.txt"]
            assert t.run(["cat", f"{d}/hello.txt"]).text.startswith("hello from the master")
            t.remove_tree(d)
            assert not t.exists(d)
        finally:
            t.close()


def test_host_key_of_another_host_is_refused(web1_host, web2_host):
    t = web1_host.transport(host_key=web2_host.host_public_key)
    try:
        with pytest.raises(HostKeyError, match="CHANGED"):
            t.run(["true"])
    finally:
        t.close()


# -- private views of the shared path ------------------------------------------------------------------------
def test_every_process_of_a_host_is_in_its_namespaces(web1_host, db1_host):
    """Daemons (and their workers), commands over SSH and run_in all share the holder's mount, UTS and network
    namespaces, none of which is the master's."""
    master = namespaces("self")
    for host in (web1_host, db1_host):
        expected = namespaces(host.holder_pid)
        assert all(expected[ns] != master[ns] for ns in expected), (host.name, expected, master)
        for daemon in host.daemons.values():
            assert daemon.running() and daemon.pid is not None, daemon
            assert namespaces(daemon.pid) == expected, (host.name, daemon.name)
            for pid in children(daemon.pid):  # php-fpm and nginx workers, sshd sessions
                try:
                    seen = namespaces(pid)
                except OSError:  # gone meanwhile (e.g. an sshd session ending)
                    continue
                assert seen == expected, (host.name, daemon.name, pid)
        t = host.transport()
        try:
            seen = t.run(["sh", "-c", "readlink /proc/self/ns/mnt /proc/self/ns/uts /proc/self/ns/net; hostname"])
            assert seen.text.split() == [expected["mnt"], expected["uts"], expected["net"], host.name]
        finally:
            t.close()
        ran = run_in(host, ["sh", "-c", "readlink /proc/self/ns/mnt /proc/self/ns/uts /proc/self/ns/net; hostname"])
        assert ran.stdout.split() == [expected["mnt"], expected["uts"], expected["net"], host.name]
        mounted = run_in(host, ["findmnt", "-n", "-o", "TARGET", "--target", str(host.shared)]).stdout
        assert mounted.strip() == str(host.shared)  # P is a mount point in the host's view
    assert namespaces(web1_host.holder_pid)["mnt"] != namespaces(db1_host.holder_pid)["mnt"]


def test_a_file_of_the_master_under_the_shared_path_is_not_on_the_host(host_network, web1_host):
    token = secrets.token_hex(4)
    path = f"{host_network.shared}/x-{token}"
    Path(path).write_text("the master's x\n")
    t = web1_host.transport()
    try:
        assert Path(path).read_text() == "the master's x\n"
        assert not t.exists(path)
        with pytest.raises(TransportError, match="cannot read"):
            t.read_file(path)
        assert run_in(web1_host, ["test", "-e", path], check=False).returncode == 1
        assert run_in(web1_host, ["cat", path], check=False).returncode != 0
        assert not web1_host.master_path(path).exists()
        # the same path holds another file on web1: each side reads its own
        t.write_file(path, "web1's x\n")
        assert t.read_file(path) == b"web1's x\n" and run_in(web1_host, ["cat", path]).stdout == "web1's x\n"
        assert Path(path).read_text() == "the master's x\n"
        assert web1_host.master_path(path).read_text() == "web1's x\n"
        t.remove_file(path)
        assert Path(path).read_text() == "the master's x\n"
    finally:
        t.close()
        Path(path).unlink()


def test_a_file_written_on_a_host_is_only_on_that_host(host_network, web1_host, web2_host, db1_host):
    path = f"{host_network.aegir_root}/y-{secrets.token_hex(4)}/y.txt"
    transports = {h.name: h.transport() for h in (web1_host, web2_host, db1_host)}
    try:
        web1 = transports["web1"]
        web1.makedirs(path.rpartition("/")[0])
        web1.write_file(path, "written on web1\n")
        assert web1.read_file(path) == b"written on web1\n"
        assert web1.run(["cat", path]).text == "written on web1\n"
        assert web1_host.master_path(path).read_text() == "written on web1\n"  # web1's private directory
        assert not Path(path).exists() and not Path(path).parent.exists()  # not the master's
        for other in (web2_host, db1_host):
            assert not transports[other.name].exists(path), other.name
            assert run_in(other, ["test", "-e", path], check=False).returncode == 1, other.name
            assert not other.master_path(path).exists(), other.name
    finally:
        transports["web1"].remove_tree(path.rpartition("/")[0])
        for t in transports.values():
            t.close()


# -- web -----------------------------------------------------------------------------------------------------
def gone(host: NetnsHost, hostname: str, path: str, timeout: float = 10.0) -> int:
    """Poll until ``hostname`` is no longer served (a reload is asynchronous); returns the status seen."""
    deadline = time.monotonic() + timeout
    while (status := http_get(host, hostname, path).status_code) == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    return status


def test_nginx_answers_from_the_root_namespace(web1_host):
    response = http_get(web1_host, "unknown.invalid")
    assert response.headers["server"].startswith("nginx")
    # 410 from the fixture; 404 once a test of this session has verified web1 (the Aegir catch-all)
    assert response.status_code == 404 or (response.status_code == 410 and "nginx on web1" in response.text)


def test_php_fpm_runs_php_through_nginx_configured_over_ssh(web1_host):
    t = web1_host.transport()
    docroot = f"{web1_host.aegir_root}/hosttest-docroot"
    conf = f"{web1_host.aegir_root}/config/nginx-hosttest.conf"  # matches the include glob
    vhost = f"""\
        server {{
            listen *:{web1_host.http_port};
            server_name phptest.example;
            root {docroot};
            location ~ \\.php$ {{
                include fastcgi_params;
                fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
                fastcgi_pass unix:{web1_host.php_fpm_socket};
            }}
        }}
        """
    try:
        t.makedirs(docroot, mode=0o755)
        t.makedirs(f"{web1_host.aegir_root}/config", mode=0o711)
        t.write_file(
            f"{docroot}/info.php",
            '<?php echo "php ", PHP_VERSION, " on ", gethostname(), " ", $_SERVER["SERVER_ADDR"];\n',
        )
        t.write_file(conf, textwrap.dedent(vhost))
        t.run(shlex.split(web1_host.http_config_test_cmd))
        t.run(shlex.split(web1_host.http_restart_cmd))
        response = wait_for_http(web1_host, "phptest.example", "/info.php", status=200)
        assert response.text.startswith("php 8.") and response.text.endswith(f" on web1 {web1_host.address}")
    finally:
        t.remove_file(conf)
        t.remove_tree(docroot)
        t.run(shlex.split(web1_host.http_restart_cmd))
        t.close()
    assert gone(web1_host, "phptest.example", "/info.php") in (404, 410)


def test_a_platform_pushed_from_the_master_is_served_from_the_hosts_view(host_network, web1_host, web2_host):
    """The platform layout of the cross-host tests: built on the master under P/platforms/<name>, pushed to the
    same path on the web host. web1's nginx reads a vhost from web1's view of P/aegir/config, and serves (static
    files) and runs (php-fpm) what is in web1's view of the platform, not the master's."""
    token = secrets.token_hex(4)
    root = f"{host_network.shared}/platforms/hosttest-{token}"
    conf = f"{web1_host.aegir_root}/config/nginx-hosttest-{token}.conf"  # matches nginx's include glob
    server_name = f"platform-{token}.example"
    local = Path(root)
    local.mkdir(parents=True)
    (local / "index.php").write_text('<?php echo "pushed platform on ", gethostname(), "\\n";\n')
    (local / "which.txt").write_text("the master's copy\n")
    vhost = f"""\
        server {{
            listen *:{web1_host.http_port};
            server_name {server_name};
            root {root};
            location ~ \\.php$ {{
                include fastcgi_params;
                fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
                fastcgi_pass unix:{web1_host.php_fpm_socket};
            }}
        }}
        """
    t, t2 = web1_host.transport(), web2_host.transport()
    try:
        assert not t.exists(root)  # nothing arrives at the same path by itself
        t.push_tree(root, root)  # what the product does for a platform on a remote web server
        t.write_file(f"{root}/which.txt", "web1's copy\n")
        t.write_file(f"{root}/only.php", '<?php echo "only on ", gethostname(), " at ", __FILE__, "\\n";\n')
        t.makedirs(f"{web1_host.aegir_root}/config", mode=0o711)
        t.write_file(conf, textwrap.dedent(vhost))
        assert not (local / "only.php").exists() and (local / "which.txt").read_text() == "the master's copy\n"
        assert not Path(conf).exists() and web1_host.master_path(conf).is_file()
        assert not t2.exists(root) and not t2.exists(conf)
        t.run(shlex.split(web1_host.http_config_test_cmd))
        t.run(shlex.split(web1_host.http_restart_cmd))
        # (wait_for_http each: an old nginx worker may answer a request or two during the reload)
        served = {
            path: wait_for_http(web1_host, server_name, path, status=200, text=text).text
            for path, text in [
                ("/index.php", "pushed platform on"),
                ("/which.txt", "copy"),
                ("/only.php", "only on"),
            ]
        }
        assert served == {
            "/index.php": "pushed platform on web1\n",  # pushed, run by web1's php-fpm
            "/which.txt": "web1's copy\n",  # web1's view, not the master's
            "/only.php": f"only on web1 at {root}/only.php\n",  # exists only in web1's view
        }
    finally:
        t.remove_file(conf)
        t.remove_tree(root)
        t.run(shlex.split(web1_host.http_restart_cmd))
        t.close()
        t2.close()
        shutil.rmtree(local)
    assert gone(web1_host, server_name, "/index.php") in (404, 410)


def test_product_http_service_verifies_the_remote_nginx(host_network):
    host = host_network.web_host("webv")  # its own host: other tests of the session may share web1 / web2
    server = context(host)
    service = http_service_for(server)
    t = transport_for(server)
    try:
        assert http_get(host, "unknown.example").status_code == 410  # the fixture's answer
        result = service.verify_server(t)
        assert result["version"] and result["version"].startswith("nginx/")
        assert result["restart_cmd"] == host.http_restart_cmd
        assert host.master_path(f"{host.aegir_root}/config/nginx.conf").is_symlink()  # in the host's view
        wait_for_http(host, "unknown.example", status=404)  # the Aegir catch-all, reloaded over SSH
    finally:
        t.close()


# -- database ------------------------------------------------------------------------------------------------
def test_mariadb_admin_from_the_master(host_network, db1_host):
    with db1_host.admin_connection() as conn, conn.cursor() as cur:
        cur.execute("SELECT USER(), VERSION()")
        user, version = cur.fetchone()
        assert user == f"aegir_admin@{host_network.gateway}" and "MariaDB" in version
        cur.execute("SHOW GRANTS")
        assert any("WITH GRANT OPTION" in g[0] for g in cur.fetchall())
        db = f"hosttest_{secrets.token_hex(4)}"
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"DROP DATABASE {db}")
    with pytest.raises(pymysql.err.OperationalError, match="Access denied"):  # a real password check
        pymysql.connect(host=db1_host.address, port=db1_host.db_port, user="aegir_admin", password="wrong")


def test_product_mysql_service_verifies_the_remote_db(host_network, db1_host):
    result = MysqlService(context(db1_host)).verify()
    assert result["db_can_grant"] and result["db_seen_as"] == host_network.gateway


def test_mariadb_admin_from_web1(web1_host, db1_host):
    sql = "SELECT USER()"
    argv = ["mariadb", "--no-defaults", "-h", db1_host.address, "-P", str(db1_host.db_port), "-u", "aegir_admin"]
    out = run_in(web1_host, [*argv, "-N", "-e", sql], env={"MYSQL_PWD": db1_host.db_password}).stdout
    assert out.strip() == f"aegir_admin@{web1_host.address}"


def test_web1_reaches_db1_over_tcp(web1_host, db1_host):
    probe = (
        f"import socket; s = socket.create_connection(({db1_host.address!r}, {db1_host.db_port}), 3); print(s.recv(5))"
    )
    assert run_in(web1_host, [sys.executable, "-c", probe]).returncode == 0
    probe_ssh = f"import socket; s = socket.create_connection(({db1_host.address!r}, 22), 3); print(s.recv(4))"
    assert "SSH-" in run_in(web1_host, [sys.executable, "-c", probe_ssh]).stdout


# -- faults --------------------------------------------------------------------------------------------------
def test_stop_sshd_refuses_and_drops_then_start_sshd_restores(web1_host):
    established = web1_host.transport(connect_timeout=3)
    try:
        assert established.run(["true"]).exit_code == 0
        stop_sshd(web1_host)
        try:
            started = time.monotonic()
            with pytest.raises(TransportConnectionError, match=web1_host.address):
                established.run(["true"])
            fresh = web1_host.transport(connect_timeout=3)
            with pytest.raises(TransportConnectionError, match="(?i)refused"):
                fresh.run(["true"])
            assert time.monotonic() - started < 5
        finally:
            start_sshd(web1_host)
        assert established.run(["hostname"]).text.strip() == "web1"  # reconnects
        # the new sshd (and what it runs) is a process of web1 again: its mount namespace, its view of P
        expected = namespaces(web1_host.holder_pid)
        assert namespaces(web1_host.daemons["sshd"].pid) == expected
        assert established.run(["readlink", "/proc/self/ns/mnt"]).text.strip() == expected["mnt"]
        fresh = web1_host.transport()
        assert fresh.run(["true"]).exit_code == 0
        fresh.close()
    finally:
        established.close()


def test_link_down_times_out_then_link_up_restores(web1_host, db1_host):
    established = web1_host.transport(connect_timeout=2)
    try:
        assert established.run(["true"]).exit_code == 0
        link_down(web1_host)
        try:
            started = time.monotonic()
            with pytest.raises(TransportConnectionError, match=web1_host.address):
                established.run(["true"])
            fresh = web1_host.transport(connect_timeout=2)
            with pytest.raises(TransportConnectionError, match=r"(?i)timed out|no route|unreachable"):
                fresh.run(["true"])
            assert time.monotonic() - started < 10
            probe = f"import socket; socket.create_connection(({db1_host.address!r}, 3306), 1)"
            assert run_in(web1_host, [sys.executable, "-c", probe], check=False).returncode != 0
        finally:
            link_up(web1_host)
        assert established.run(["hostname"]).text.strip() == "web1"
        assert http_get(web1_host, "unknown.invalid").status_code in (404, 410)
    finally:
        established.close()


def test_a_host_vanishing_mid_command_fails_the_command_naming_the_host(web1_host):
    """The link goes down while a command runs: the transport notices the dead peer (SSH keepalive +
    TCP_USER_TIMEOUT) and fails the command within about half a minute, instead of hanging for ~15 min."""
    transport = web1_host.transport(connect_timeout=2)
    outcome: list[BaseException | object] = []
    try:
        assert transport.run(["true"]).exit_code == 0

        def long_command() -> None:
            try:
                outcome.append(transport.run(["sleep", "120"]))
            except BaseException as e:  # noqa: BLE001 - checked below
                outcome.append(e)

        worker = threading.Thread(target=long_command, daemon=True)
        worker.start()
        time.sleep(1)
        started = time.monotonic()
        link_down(web1_host)
        try:
            worker.join(60)
            took = time.monotonic() - started
        finally:
            link_up(web1_host)
        assert outcome and isinstance(outcome[0], TransportConnectionError), outcome
        assert web1_host.address in str(outcome[0]) and took < 45, (str(outcome[0]), took)
        assert transport.run(["hostname"]).text.strip() == "web1"  # reconnects once the host is back
    finally:
        transport.close()


# -- housekeeping --------------------------------------------------------------------------------------------
def alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for init to reap it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


STALE_SESSION = """
import json, sys, time
from tests.support.hosts import HostNetwork
net = HostNetwork.create()
host = net.web_host("web1")
print(json.dumps({"tag": net.tag, "netns": host.netns, "bridge": net.bridge, "base": str(net.base),
                  "holder": host.holder_pid, "pids": [d.pid for d in host.daemons.values()]}), flush=True)
time.sleep(600)
"""


def test_a_killed_session_is_cleaned_up_by_the_next(host_network):
    proc = subprocess.Popen(
        [sys.executable, "-c", STALE_SESSION], cwd=REPO, stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        state = json.loads(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGKILL)  # no teardown: namespace, bridge, tree and daemons stay behind
        proc.wait()
    assert state["netns"] in hosts._netns_names() and state["bridge"] in hosts._link_names()
    assert state["holder"] in state["pids"] and all(alive(pid) for pid in state["pids"])
    with hosts._machine_lock():
        removed = hosts.cleanup_stale()
    assert state["tag"] in removed and host_network.tag not in removed
    assert state["netns"] not in hosts._netns_names() and state["bridge"] not in hosts._link_names()
    assert not Path(state["base"]).exists()
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in state["pids"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(pid) for pid in state["pids"])
    # our own session is untouched
    assert host_network.bridge in hosts._link_names()
