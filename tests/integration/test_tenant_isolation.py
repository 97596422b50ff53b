"""The trust boundary (DESIGN §11): a tenant reaches nothing of the control plane.

A hosted site's PHP runs as the web server's user (``www-data``) and must be treated as hostile; so must any
other local account (``nobody`` here). The world below has what they would want: a verified server whose
block holds the admin's MariaDB password, an installed site whose state block holds its database password,
the install run with its logs and its one-time login link (an artifact), and a deployment to start runs
from. Then, as ``www-data`` and as ``nobody``:

- **every HTTP route of the API app** (taken from Prefect's own router list, so a route added by a later
  Prefect is tried too), and a hand-written list with real ids and real bodies (block documents with and
  without ``include_secrets``, artifacts, logs, flow runs, deployments, variables, the UI's ``/api/ui/...``
  routes, admin, csrf-token, create / patch / delete a block document, create a flow run from the
  deployment, a few path tricks around the open ``/health``), without a credential and with wrong ones,
  answer exactly 401 ``{"exception_message":"Unauthorized"}``; only ``GET /api/health`` and
  ``GET /api/ready`` are open, and they say nothing;
- **every websocket route** (``/api/events/in``, ``/api/events/out``, ``/api/logs/out``,
  ``/api/task_runs/subscriptions/scheduled``, the worker channel) refuses the handshake without the
  ``prefect`` subprotocol (HTTP 403), and with it closes with 1008 (policy violation) on a first message
  that is not ``auth``, on an auth message without a token or with a wrong one, and sends nothing to a
  client that says nothing; an event the tenant pushed into ``/api/events/in`` never reaches an
  authenticated subscriber;
- the Prefect profile holding the credential (0600 in a 0700 ``PREFECT_HOME``), the harness's database
  and the result storage are unreadable, and no process environment or command line they can read holds
  the credential or a secret.

The same requests with the right credential, from the test process, succeed (the secrets are really
there: 200 with the password in the body), and so does the CLI, so each 401 is the authentication and not
a broken route. Finally a PHP script served by the hosted site (through nginx and php-fpm, as
``www-data``) calls the API, reads the profile and the environment, and gets nothing either.

Prefect issue #17687 reported that the events websocket skipped basic auth (Prefect 3.2: the HTTP middleware
that checks ``Authorization`` never sees websocket requests). On 3.8.8 this test shows it closed for every
websocket route of the API: ``prefect.server.utilities.subscriptions.accept_prefect_socket`` refuses a
socket without the ``prefect`` subprotocol whenever ``PREFECT_SERVER_API_AUTH_STRING`` is set, and with it
requires a first ``{"type": "auth", "token": ...}`` message equal (hmac) to that credential before anything
is read or sent. If a later Prefect routes a websocket around ``accept_prefect_socket``, or accepts legacy
sockets despite the auth setting, the websocket part of this test fails.

The tenants' interpreter is the system's ``python3`` with the venv's ``site-packages`` on its path (only for
``websockets``): the venv's own interpreter lives under the admin's 0700 home, which they cannot execute.
"""

from __future__ import annotations

import base64
import contextlib
import json
import pwd
import re
import shutil
import stat
import subprocess
import sysconfig
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from aegir import registry
from tests.fixtures.drupal import make_platforms
from tests.integration.helpers import aegir, unique
from tests.integration.sites import Hosting, make_hosting

pytestmark = pytest.mark.integration

TENANTS = ("www-data", "nobody")
SYSTEM_PYTHON = "/usr/bin/python3"
RUNUSER = shutil.which("runuser", path="/usr/sbin:/usr/bin:/sbin:/bin") or "runuser"
SITE_PACKAGES = sysconfig.get_paths()["purelib"]
UNAUTHORIZED = '{"exception_message":"Unauthorized"}'
OPEN = {("GET", "/api/health"): "true", ("GET", "/api/ready"): '{"message":"OK"}'}
EVENT_PREFIX = "aegir.test.isolation."
CREDENTIAL_VARIABLES = ("PREFECT_API_AUTH_STRING", "PREFECT_SERVER_API_AUTH_STRING", "PREFECT_API_KEY")


def iso(t: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# what a tenant tries as a credential: none, wrong ones, malformed ones, and a wrong one behind spoofed headers
BAD_CREDENTIALS: dict[str, dict[str, str]] = {
    "none": {},
    "wrong": {"Authorization": "Basic " + b64("admin:wrong")},
    "empty-password": {"Authorization": "Basic " + b64("admin:")},
    "malformed": {"Authorization": "Basic not-base64!"},
    "bearer": {"Authorization": "Bearer admin"},
    "spoofed": {
        "Authorization": "Basic " + b64("admin:wrong"),
        "Host": "localhost",
        "X-Forwarded-For": "127.0.0.1",
        "X-Real-IP": "127.0.0.1",
        "X-Forwarded-Proto": "https",
    },
}
SWEEP_CREDENTIALS = ("none", "wrong")


# -------------------------------------------------------------------------------------------------------
# the tenant's side: a script run as www-data / nobody, reporting what it got as JSON on stdout
# -------------------------------------------------------------------------------------------------------
TENANT_SCRIPT = r"""
import http.client, json, os, pwd, sys, time
from concurrent.futures import ThreadPoolExecutor

plan = json.load(sys.stdin)
sys.path.append(plan["site_packages"])  # websockets only
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

HOST, PORT = plan["host"], plan["port"]


def call(method, path, body, headers):
    conn = http.client.HTTPConnection(HOST, PORT, timeout=15)
    try:
        data = None if body is None else json.dumps(body).encode()
        hdrs = dict(headers)
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=hdrs)
        response = conn.getresponse()
        return {"status": response.status, "body": response.read().decode("utf-8", "replace")[:20000]}
    except Exception as e:
        return {"status": None, "body": f"{type(e).__name__}: {e}"}
    finally:
        conn.close()


def websocket(path, subprotocols, messages, wait):
    result = {"handshake": None, "subprotocol": None, "close": None, "received": []}
    try:
        with connect(f"ws://{HOST}:{PORT}{path}", subprotocols=subprotocols or None, open_timeout=10, close_timeout=2,
                     proxy=None) as sock:
            result["handshake"] = 101
            result["subprotocol"] = sock.subprotocol
            for message in messages:
                sock.send(json.dumps(message))
            deadline = time.monotonic() + wait
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    result["received"].append(str(sock.recv(timeout=remaining)))
                except TimeoutError:
                    break
    except InvalidStatus as e:
        result["handshake"] = e.response.status_code
        result["received"].append(e.response.body.decode("utf-8", "replace") if e.response.body else "")
        if result["received"] == [""]:
            result["received"] = []
    except ConnectionClosed as e:
        result["close"] = [e.rcvd.code, e.rcvd.reason] if e.rcvd else ["no close frame", str(e)]
    except Exception as e:
        result["close"] = ["error", f"{type(e).__name__}: {e}"]
    return result


def read(path):
    try:
        if os.path.isdir(path):
            return {"readable": True, "content": "\n".join(sorted(os.listdir(path)))}
        with open(path, "rb") as f:
            return {"readable": True, "content": f.read(200000).decode("utf-8", "replace")}
    except OSError as e:
        return {"readable": False, "error": type(e).__name__}


def readable_processes():
    # every /proc/PID/environ and cmdline this account can read, as text
    out, prefect_vars = [], set()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        for part in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{part}", "rb") as f:
                    text = f.read().replace(b"\0", b"\n").decode("utf-8", "replace")
            except OSError:
                continue
            out.append(f"--- {pid} {part}\n{text}")
            if part == "environ":
                prefect_vars |= {ln.split("=", 1)[0] for ln in text.splitlines() if ln.upper().startswith("PREFECT")}
    return {"text": "\n".join(out), "prefect_variables": sorted(prefect_vars)}


def try_http(req, cred):
    got = call(req["method"], req["path"], req["body"], plan["credentials"][cred])
    return {"label": req["label"], "method": req["method"], "path": req["path"], "cred": cred, **got}


def try_ws(ws):
    return {"path": ws["path"], "case": ws["case"],
            **websocket(ws["path"], ws["subprotocols"], ws["messages"], ws["wait"])}


report = {"uid": os.getuid(), "user": pwd.getpwuid(os.getuid()).pw_name, "files": {}}
with ThreadPoolExecutor(8) as pool:
    ws_results = pool.map(try_ws, plan["websockets"])
    http_results = pool.map(lambda a: try_http(*a), [(r, c) for r in plan["requests"] for c in r["creds"]])
    report["http"], report["ws"] = list(http_results), list(ws_results)
for path in plan["files"]:
    report["files"][path] = read(path)
report["environ"] = {k: v for k, v in os.environ.items() if k.upper().startswith("PREFECT")}
report["processes"] = readable_processes()
json.dump(report, sys.stdout)
"""


# a hosted site's hostile PHP: included by the platform's front controller when ?tenant_probe is given
PHP_PROBE = r"""<?php
// TEST FIXTURE (tests/integration/test_tenant_isolation.py): a tenant's code trying to reach the control plane.
function tenant_api($method, $path, $body, $auth) {
  $headers = "Content-Type: application/json\r\n";
  if ($auth !== NULL) {
    $headers .= "Authorization: Basic " . base64_encode($auth) . "\r\n";
  }
  $context = stream_context_create(['http' => [
    'method' => $method, 'header' => $headers, 'ignore_errors' => TRUE, 'timeout' => 10,
    'content' => $body === NULL ? '' : json_encode($body),
  ]]);
  $text = @file_get_contents(TENANT_API . $path, FALSE, $context);
  $status = 0;
  if (isset($http_response_header[0]) && preg_match('{^HTTP/\S+ (\d+)}', $http_response_header[0], $m)) {
    $status = (int) $m[1];
  }
  return ['status' => $status, 'body' => $text === FALSE ? NULL : substr($text, 0, 20000)];
}

function tenant_read($path) {
  if (@is_dir($path)) {
    $list = @scandir($path);
    return ['readable' => $list !== FALSE, 'content' => $list === FALSE ? NULL : implode("\n", $list)];
  }
  $text = @file_get_contents($path);
  return ['readable' => $text !== FALSE, 'content' => $text === FALSE ? NULL : $text];
}

define('TENANT_API', %(api)s);
$block = isset($_GET['block']) ? $_GET['block'] : '';
$artifact = isset($_GET['artifact']) ? $_GET['artifact'] : '';
$run = isset($_GET['run']) ? $_GET['run'] : '';
$requests = [
  'block_documents/filter' => ['POST', '/block_documents/filter', ['include_secrets' => TRUE, 'limit' => 200]],
  'block_documents/{id}' => ['GET', '/block_documents/' . $block . '?include_secrets=true', NULL],
  'artifacts/filter' => ['POST', '/artifacts/filter', (object) []],
  'artifacts/{id}' => ['GET', '/artifacts/' . $artifact, NULL],
  'logs/filter' => ['POST', '/logs/filter', (object) []],
  'flow_runs/{id}' => ['GET', '/flow_runs/' . $run, NULL],
  'flow_runs/filter' => ['POST', '/flow_runs/filter', (object) []],
  'variables/filter' => ['POST', '/variables/filter', (object) []],
];
$api = [];
foreach ($requests as $label => $r) {
  foreach (['none' => NULL, 'wrong' => 'admin:wrong'] as $cred => $auth) {
    $api[] = ['label' => $label, 'cred' => $cred] + tenant_api($r[0], $r[1], $r[2], $auth);
  }
}

$prefect_env = [];
foreach ([getenv(), $_ENV, $_SERVER] as $source) {
  foreach ((array) $source as $key => $value) {
    if (stripos((string) $key, 'PREFECT') === 0) {
      $prefect_env[$key] = $value;
    }
  }
}
$processes = [];
foreach ((array) @scandir('/proc') as $pid) {
  if (!ctype_digit((string) $pid)) {
    continue;
  }
  foreach (['environ', 'cmdline'] as $part) {
    $text = @file_get_contents("/proc/$pid/$part");
    if ($text !== FALSE) {
      $processes[] = "--- $pid $part\n" . str_replace("\0", "\n", $text);
    }
  }
}
$files = [];
foreach (json_decode(%(files)s, TRUE) as $path) {
  $files[$path] = tenant_read($path);
}

header('Content-Type: application/json');
print json_encode([
  'user' => posix_getpwuid(posix_geteuid())['name'],
  'api' => $api,
  'getenv_auth' => getenv('PREFECT_API_AUTH_STRING'),
  'getenv_url' => getenv('PREFECT_API_URL'),
  'prefect_env' => $prefect_env,
  'files' => $files,
  'processes' => implode("\n", $processes),
]);
"""


# -------------------------------------------------------------------------------------------------------
# the world worth stealing
# -------------------------------------------------------------------------------------------------------
@dataclass
class World:
    prefect_api: Any
    hosting: Hosting
    site: str
    uri: str
    login_link: str
    run_id: str
    server_doc: str  # the server's block document (holds the admin's MariaDB password)
    site_state_doc: str  # the site's state block document (holds its database password)
    artifact_id: str  # the login link
    artifact_key: str
    deployment_id: str
    block_type_id: str
    block_schema_id: str
    server_slug: str  # the server document's block type
    server_doc_name: str | None  # its name (None: anonymous)
    secrets: dict[str, str] = field(repr=False)
    files: list[str] = field(default_factory=list)

    @property
    def api(self) -> str:
        return self.prefect_api.url.rstrip("/")

    @property
    def root(self) -> str:
        """The server's root URL (the API is mounted at /api)."""
        return self.api.rsplit("/api", 1)[0]

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.api)
        return parts.hostname or "127.0.0.1", parts.port or 80

    def admin(self) -> httpx.Client:
        return admin_client(self.prefect_api)

    def leaked(self, text: str | None) -> list[str]:
        """The names of the secrets that appear in ``text``."""
        return [name for name, value in self.secrets.items() if text and value in text]


def admin_client(prefect_api: Any) -> httpx.Client:
    """The API as the admin: the right credential."""
    user, _, password = prefect_api.auth.partition(":")
    return httpx.Client(base_url=prefect_api.url.rstrip("/"), auth=(user, password), timeout=30, trust_env=False)


def _patch_front_controller(root: Path, api: str, files: list[str]) -> None:
    """The platform's index.php runs the tenant probe when asked (?tenant_probe), else the site as usual."""
    probe = PHP_PROBE % {"api": json.dumps(api), "files": "'" + json.dumps(files).replace("'", "\\'") + "'"}
    (root / "tenant_probe.inc").write_text(probe)
    (root / "tenant_probe.inc").chmod(0o644)
    index = root / "index.php"
    text = index.read_text()
    assert text.startswith("<?php\n"), text[:40]
    hook = "if (isset($_GET['tenant_probe'])) { require __DIR__ . '/tenant_probe.inc'; exit; }\n"
    index.write_text("<?php\n" + hook + text[len("<?php\n") :])


def _documents_holding(admin: httpx.Client, secret: str) -> list[dict[str, Any]]:
    """Every block document (named or anonymous) whose revealed data holds ``secret``."""
    body: dict[str, Any] = {"block_documents": {"is_anonymous": None}, "include_secrets": True, "limit": 200}
    found, offset = [], 0
    while True:
        response = admin.post("/block_documents/filter", json={**body, "offset": offset})
        response.raise_for_status()
        page = response.json()
        found += [doc for doc in page if secret in json.dumps(doc["data"])]
        if len(page) < body["limit"]:
            return found
        offset += body["limit"]


@pytest.fixture(scope="module")
def world(prefect_api, nginx_server, db_admin) -> Iterator[World]:
    from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, PREFECT_SERVER_DATABASE_CONNECTION_URL

    from blocks.store import BlockStore

    store = BlockStore(prefect_api.url, prefect_api.auth)
    database = str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value()).split(":///", 1)[-1]
    files = [
        str(prefect_api.home / "profiles.toml"),
        str(prefect_api.home),
        database,
        str(Path(database).parent),
        str(PREFECT_RESULTS_LOCAL_STORAGE_PATH.value()),
        "/root/.prefect/profiles.toml",
    ]
    with contextlib.contextmanager(make_hosting)(store, nginx_server, db_admin, "@server_tenant") as hosting:
        root = make_platforms.build("d7", hosting.platforms_dir / unique("tenant"))
        _patch_front_controller(root, prefect_api.url.rstrip("/"), files)
        platform = hosting.verified_platform("d7", root=str(root))
        site = hosting.site(platform)

        # the CLI works, with the credential from the admin's 0600 profile
        installed = aegir(prefect_api.env, "install", site)
        assert installed.returncode == 0, installed.stderr
        login_link = re.search(r"One-time login link: (\S+)", installed.stdout).group(1)
        run_id = re.search(r"\(([0-9a-f-]{36})\)", installed.stderr).group(1)
        shown = aegir(prefect_api.env, "show", hosting.server, "--json")
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["db_user"] == db_admin["db_user"]
        assert db_admin["db_password"] not in shown.stdout

        site_password = registry.load_site(store, site).db_password.get_secret_value()
        secrets = {
            "admin db_password": db_admin["db_password"],
            "site db_password": site_password,
            "API credential": prefect_api.auth.partition(":")[2],
            "login link": urlsplit(login_link).path,
        }
        with admin_client(prefect_api) as admin:
            server_doc = _documents_holding(admin, db_admin["db_password"])[0]
            site_doc = _documents_holding(admin, site_password)[0]
            artifacts = admin.post("/artifacts/filter", json={"flow_runs": {"id": {"any_": [run_id]}}}).json()
            (artifact,) = [a for a in artifacts if login_link in str(a["data"])]
            flow = admin.post("/flows/", json={"name": unique("aegir-tenant-isolation-")})
            flow.raise_for_status()
            deployment = admin.post("/deployments/", json={"name": "probe", "flow_id": flow.json()["id"]})
            deployment.raise_for_status()
            try:
                yield World(
                    prefect_api=prefect_api,
                    hosting=hosting,
                    site=site,
                    uri=site[1:],
                    login_link=login_link,
                    run_id=run_id,
                    server_doc=server_doc["id"],
                    site_state_doc=site_doc["id"],
                    artifact_id=artifact["id"],
                    artifact_key=artifact["key"],
                    deployment_id=deployment.json()["id"],
                    block_type_id=server_doc["block_type_id"],
                    block_schema_id=server_doc["block_schema_id"],
                    server_slug=server_doc["block_type"]["slug"],
                    server_doc_name=None if server_doc["is_anonymous"] else server_doc["name"],
                    secrets=secrets,
                    files=files,
                )
            finally:
                admin.delete(f"/deployments/{deployment.json()['id']}")
                admin.delete(f"/flows/{flow.json()['id']}")


# -------------------------------------------------------------------------------------------------------
# what is tried
# -------------------------------------------------------------------------------------------------------
@dataclass
class Route:
    label: str
    method: str
    path: str  # as the tenant sends it (real ids: the real attack)
    body: Any = None
    admin_path: str | None = None  # the positive control's path (writes aim at no document); None: path
    admin_body: Any = "same"  # the positive control's body ("same": body)
    admin_ok: tuple[int, ...] = ()  # the positive control's expected status (empty: anything but 401)
    admin_has: str | None = None  # a secret (name) the positive control's answer must contain
    control: bool = True  # False: a path trick with no positive control


def named_routes(w: World) -> list[Route]:
    """The routes that matter, with real ids and bodies."""
    nowhere = str(uuid.uuid4())
    now = iso()
    day_ago = iso(time.time() - 86400)
    ids = [w.server_doc, w.site_state_doc]
    secrets_filter = {"block_documents": {"id": {"any_": ids}, "is_anonymous": None}, "include_secrets": True}
    by_type = f"/api/block_types/slug/{w.server_slug}/block_documents"
    named = "admin db_password" if w.server_doc_name else None  # these two routes list named documents only
    return [
        Route(
            "block document, include_secrets",
            "GET",
            f"/api/block_documents/{w.server_doc}?include_secrets=true",
            admin_ok=(200,),
            admin_has="admin db_password",
        ),
        Route("block document", "GET", f"/api/block_documents/{w.server_doc}", admin_ok=(200,)),
        Route(
            "site state document, include_secrets",
            "GET",
            f"/api/block_documents/{w.site_state_doc}?include_secrets=true",
            admin_ok=(200,),
            admin_has="site db_password",
        ),
        Route(
            "block documents filter, include_secrets",
            "POST",
            "/api/block_documents/filter",
            secrets_filter,
            admin_ok=(200,),
            admin_has="admin db_password",
        ),
        Route("block documents filter", "POST", "/api/block_documents/filter", {}, admin_ok=(200,)),
        Route("block documents count", "POST", "/api/block_documents/count", {}, admin_ok=(200,)),
        Route(
            "block type's documents, include_secrets",
            "GET",
            f"{by_type}?include_secrets=true",
            admin_ok=(200,),
            admin_has=named,
        ),
        Route(
            "block document by type and name, include_secrets",
            "GET",
            f"{by_type}/name/{w.server_doc_name or 'tenant-probe'}?include_secrets=true",
            admin_ok=(200,) if named else (404,),
            admin_has=named,
        ),
        Route("block types filter", "POST", "/api/block_types/filter", {}, admin_ok=(200,)),
        Route("block schemas filter", "POST", "/api/block_schemas/filter", {}, admin_ok=(200,)),
        Route(
            "artifacts filter",
            "POST",
            "/api/artifacts/filter",
            {"flow_runs": {"id": {"any_": [w.run_id]}}},
            admin_ok=(200,),
            admin_has="login link",
        ),
        Route("artifact", "GET", f"/api/artifacts/{w.artifact_id}", admin_ok=(200,), admin_has="login link"),
        Route(
            "latest artifacts filter",
            "POST",
            "/api/artifacts/latest/filter",
            {"artifacts": {"key": {"any_": [w.artifact_key]}}},
            admin_ok=(200,),
            admin_has="login link",
        ),
        Route(
            "logs filter", "POST", "/api/logs/filter", {"logs": {"flow_run_id": {"any_": [w.run_id]}}}, admin_ok=(200,)
        ),
        Route("flow run logs download", "GET", f"/api/flow_runs/{w.run_id}/logs/download", admin_ok=(200,)),
        Route("flow runs filter", "POST", "/api/flow_runs/filter", {}, admin_ok=(200,)),
        Route("flow runs paginate", "POST", "/api/flow_runs/paginate", {}, admin_ok=(200,)),
        Route("flow run", "GET", f"/api/flow_runs/{w.run_id}", admin_ok=(200,)),
        Route("task runs filter", "POST", "/api/task_runs/filter", {}, admin_ok=(200,)),
        Route("deployments filter", "POST", "/api/deployments/filter", {}, admin_ok=(200,)),
        Route("variables filter", "POST", "/api/variables/filter", {}, admin_ok=(200,)),
        Route("events filter", "POST", "/api/events/filter", {}, admin_ok=(200,)),
        Route(
            "UI: flow run history",
            "POST",
            "/api/ui/flow_runs/history",
            {"history_start": day_ago, "history_end": now, "history_interval_seconds": 3600},
            admin_ok=(200,),
        ),
        Route(
            "UI: flow run task-run counts",
            "POST",
            "/api/ui/flow_runs/count-task-runs",
            {"flow_run_ids": [w.run_id]},
            admin_ok=(200,),
        ),
        Route(
            "UI: dashboard task-run counts",
            "POST",
            "/api/ui/task_runs/dashboard/counts",
            {"task_runs": {"start_time": {"after_": day_ago}}},
            admin_ok=(200,),
        ),
        Route("UI: task-run count", "POST", "/api/ui/task_runs/count", {}, admin_ok=(200,)),
        Route("UI: flows next runs", "POST", "/api/ui/flows/next-runs", {"flow_ids": []}, admin_ok=(200,)),
        Route(
            "UI: flows count deployments", "POST", "/api/ui/flows/count-deployments", {"flow_ids": []}, admin_ok=(200,)
        ),
        Route("UI: schema validate", "POST", "/api/ui/schemas/validate", {"schema": {}, "values": {}}),
        Route("admin version", "GET", "/api/admin/version", admin_ok=(200,)),
        Route("admin settings", "GET", "/api/admin/settings", admin_ok=(200,)),
        Route("csrf token", "GET", "/api/csrf-token?client=x"),
        Route("hello", "GET", "/api/hello", admin_ok=(200,)),
        Route("API version", "GET", "/api/version", admin_ok=(200,)),
        Route("OpenAPI schema", "GET", "/api/openapi.json", control=False),  # generating it takes seconds
        Route("API docs", "GET", "/api/docs", admin_ok=(200,)),
        Route(
            "create a block document",
            "POST",
            "/api/block_documents/",
            {
                "name": "tenant-stolen",
                "data": {},
                "block_type_id": w.block_type_id,
                "block_schema_id": w.block_schema_id,
            },
            admin_body={},  # no document made by the control
            admin_ok=(422,),
        ),
        Route(
            "patch the server's block document",
            "PATCH",
            f"/api/block_documents/{w.server_doc}",
            {"data": {"db_password": "tenant-chosen"}, "merge_existing_data": True},
            admin_path=f"/api/block_documents/{nowhere}",
            admin_ok=(404,),
        ),
        Route(
            "delete the server's block document",
            "DELETE",
            f"/api/block_documents/{w.server_doc}",
            admin_path=f"/api/block_documents/{nowhere}",
            admin_ok=(404,),
        ),
        Route(
            "create a flow run from the deployment",
            "POST",
            f"/api/deployments/{w.deployment_id}/create_flow_run",
            {},
            admin_path=f"/api/deployments/{nowhere}/create_flow_run",
            admin_ok=(404,),
        ),
        Route(
            "set the install run's state",
            "POST",
            f"/api/flow_runs/{w.run_id}/set_state",
            {"state": {"type": "CANCELLED"}, "force": True},
            admin_path=f"/api/flow_runs/{nowhere}/set_state",
            admin_ok=(404,),
        ),
        Route("HEAD block documents", "HEAD", f"/api/block_documents/{w.server_doc}", control=False),
        Route("OPTIONS block documents filter", "OPTIONS", "/api/block_documents/filter", control=False),
        # around the open /health and the mount
        Route("trick: /health/../", "POST", "/api/health/../block_documents/filter", secrets_filter, control=False),
        Route("trick: /ready/../", "POST", "/api/ready/../block_documents/filter", secrets_filter, control=False),
        Route("trick: //", "POST", "/api//block_documents/filter", secrets_filter, control=False),
        Route("trick: /./", "POST", "/api/./block_documents/filter", secrets_filter, control=False),
        Route("trick: %-encoded", "POST", "/%61pi/block_documents/filter", secrets_filter, control=False),
        Route("trick: trailing /", "POST", "/api/block_documents/filter/", secrets_filter, control=False),
        Route("trick: ?/health", "POST", "/api/block_documents/filter?x=/health", secrets_filter, control=False),
    ]


def api_routes() -> tuple[list[tuple[str, str]], list[str]]:
    """Every HTTP (method, path) and websocket path of Prefect's API app, from its own router list."""
    from fastapi.routing import APIRoute, APIWebSocketRoute
    from prefect.server.api.server import API_ROUTERS

    http, ws = [], []
    for router in API_ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute):
                http += [(method, route.path) for method in sorted(route.methods)]
            elif isinstance(route, APIWebSocketRoute):
                ws.append(route.path)
    # the API app's own routes (create_api_app): health, version, the schema and docs
    http += [("GET", "/health"), ("GET", "/version"), ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/redoc")]
    return http, ws


def concrete(path: str) -> str:
    """A route template with made-up values (nothing real: the sweep must be harmless if a route were open)."""

    def value(match: re.Match[str]) -> str:
        name, _, kind = match.group(1).partition(":")
        return str(uuid.uuid4()) if kind == "uuid" or name.endswith("id") else "tenant-probe"

    return "/api" + re.sub(r"\{([^}]+)\}", value, path)


def sweep_routes() -> list[dict[str, Any]]:
    http, _ = api_routes()
    assert len(http) > 150, http  # the list is Prefect's, not empty
    return [
        {"label": f"sweep {method} {template}", "method": method, "path": concrete(template),
         "body": {} if method in ("POST", "PUT", "PATCH") else None, "creds": list(SWEEP_CREDENTIALS)}
        for method, template in http
    ]  # fmt: skip


def websocket_cases(w: World) -> list[dict[str, Any]]:
    _, ws = api_routes()
    paths = ["/api" + re.sub(r"\{[^}]+\}", "tenant-probe", p) for p in ws]
    assert {"/api/events/in", "/api/events/out", "/api/logs/out"} <= set(paths), paths
    event = {
        "id": str(uuid.uuid4()),
        "occurred": iso(),
        "event": EVENT_PREFIX + "tenant",
        "resource": {"prefect.resource.id": "tenant.probe"},
    }
    subscribe = {"type": "filter", "filter": {}}
    cases = []
    for path in paths:
        first = event if path.endswith("/events/in") else subscribe
        for case, subprotocols, messages, wait in (
            ("no subprotocol", [], [first], 1.0),
            ("prefect, no auth message", ["prefect"], [first, event], 1.0),
            ("prefect, auth without token", ["prefect"], [{"type": "auth"}, first], 1.0),
            ("prefect, empty token", ["prefect"], [{"type": "auth", "token": ""}, first], 1.0),
            ("prefect, wrong token", ["prefect"], [{"type": "auth", "token": "admin:wrong"}, first], 1.0),
            ("prefect, silent", ["prefect"], [], 1.0),
        ):
            cases.append({"path": path, "case": case, "subprotocols": subprotocols, "messages": messages, "wait": wait})
    return cases


def run_as(user: str, plan: dict[str, Any]) -> dict[str, Any]:
    argv = [RUNUSER, "-u", user, "--", SYSTEM_PYTHON, "-I", "-c", TENANT_SCRIPT]
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    result = subprocess.run(argv, input=json.dumps(plan), capture_output=True, text=True, env=env, cwd="/",
                            timeout=180)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


# -------------------------------------------------------------------------------------------------------
# websockets from the admin's side (the positive control, and the subscriber that sees what got in)
# -------------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def admin_socket(w: World, path: str) -> Iterator[Any]:
    from websockets.sync.client import connect

    host, port = w.address
    with connect(f"ws://{host}:{port}{path}", subprotocols=["prefect"], open_timeout=15, proxy=None) as sock:
        assert sock.subprotocol == "prefect"
        sock.send(json.dumps({"type": "auth", "token": w.prefect_api.auth}))
        assert json.loads(sock.recv(timeout=15)) == {"type": "auth_success"}
        yield sock


def publish_marker(w: World) -> str:
    marker = str(uuid.uuid4())
    with admin_socket(w, "/api/events/in") as sock:
        sock.send(
            json.dumps({
                "id": marker,
                "occurred": iso(),
                "event": EVENT_PREFIX + "marker",
                "resource": {"prefect.resource.id": "admin.marker"},
            })
        )  # fmt: skip
    return marker


def events_until(sock: Any, marker: str, timeout: float = 20.0) -> list[dict[str, Any]]:
    """The isolation events the subscriber got, up to and including the marker."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            message = json.loads(sock.recv(timeout=max(0.1, deadline - time.monotonic())))
        except TimeoutError:
            break
        if message.get("type") == "event":
            seen.append(message["event"])
            if message["event"]["id"] == marker:
                return seen
    raise AssertionError(f"the admin's marker event never arrived on /api/events/out; got {seen}")


# -------------------------------------------------------------------------------------------------------
# the tests
# -------------------------------------------------------------------------------------------------------
def test_the_admin_with_the_credential_reaches_every_route(world):
    """Positive control: the same routes answer the credential (and hold the secrets), the websockets
    authenticate it, and the profile that carries it is the admin's alone."""
    failures = []
    with world.admin() as admin:
        for route in named_routes(world):
            if not route.control:
                continue
            path = route.admin_path or route.path
            body = route.body if route.admin_body == "same" else route.admin_body
            response = admin.request(route.method, world.root + path, json=body)
            ok = response.status_code in route.admin_ok if route.admin_ok else response.status_code != 401
            if not ok or (route.admin_has and route.admin_has not in world.leaked(response.text)):
                failures.append(f"{route.method} {path}: {response.status_code} {response.text[:200]!r}")
            if route.label == "block document":  # without include_secrets the password is obfuscated
                assert world.secrets["admin db_password"] not in response.text
    assert not failures, "\n".join(failures)

    _, ws = api_routes()
    for template in ws:
        path = "/api" + re.sub(r"\{[^}]+\}", "tenant-probe", template)
        with admin_socket(world, path):
            pass  # auth_success

    home = world.prefect_api.home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "profiles.toml").stat().st_mode) == 0o600


@pytest.mark.parametrize("user", TENANTS)
def test_a_tenant_account_gets_401_from_every_route(world, user):
    named = named_routes(world)
    plan = {
        "host": world.address[0],
        "port": world.address[1],
        "site_packages": SITE_PACKAGES,
        "credentials": BAD_CREDENTIALS,
        "requests": [
            {"label": r.label, "method": r.method, "path": r.path, "body": r.body, "creds": list(BAD_CREDENTIALS)}
            for r in named
        ]
        + sweep_routes()
        + [{"label": "open", "method": method, "path": path, "body": None, "creds": ["none"]} for method, path in OPEN],
        "websockets": websocket_cases(world),
        "files": world.files,
    }
    with admin_socket(world, "/api/events/out") as subscriber:
        # live events only, and a window that includes what comes later (the default one ends now)
        window = {"since": iso(time.time() - 60), "until": iso(time.time() + 3600)}
        live = {"event": {"prefix": [EVENT_PREFIX]}, "occurred": window}
        subscriber.send(json.dumps({"type": "filter", "filter": live, "backfill": False}))
        report = run_as(user, plan)
        marker = publish_marker(world)
        seen = events_until(subscriber, marker)
    assert report["user"] == user and report["uid"] == pwd.getpwnam(user).pw_uid

    # HTTP: 401 with nothing in it, except the two open probes
    wrong = []
    for got in report["http"]:
        key = (got["method"], got["path"])
        expected = (200, OPEN[key]) if key in OPEN else (401, UNAUTHORIZED)
        if got["method"] == "HEAD":
            expected = (expected[0], "")
        if (got["status"], got["body"]) != expected or world.leaked(got["body"]):
            wrong.append(f"{got['method']} {got['path']} [{got['cred']}]: {got['status']} {got['body'][:300]!r}")
    assert not wrong, f"{len(wrong)} answers to {user} were not 401:\n" + "\n".join(wrong)
    assert len(report["http"]) >= 150 * len(SWEEP_CREDENTIALS) + len(named) * len(BAD_CREDENTIALS)

    # websockets: refused without the subprotocol, closed 1008 with it, nothing ever received
    wrong = []
    for got in report["ws"]:
        if got["case"] == "no subprotocol":
            ok = got["handshake"] == 403 and got["received"] == []
        elif got["case"] == "prefect, silent":
            ok = got["handshake"] == 101 and got["received"] == [] and got["close"] is None
        else:
            ok = got["handshake"] == 101 and got["close"] is not None and got["close"][0] == 1008
            ok = ok and got["received"] == [] and got["subprotocol"] == "prefect"
        if not ok or world.leaked(json.dumps(got)):
            wrong.append(f"{got['path']} ({got['case']}): {json.dumps(got)[:400]}")
    assert not wrong, f"websockets answered {user}:\n" + "\n".join(wrong)
    assert [e["event"] for e in seen] == [EVENT_PREFIX + "marker"], seen  # the tenant's event never got in

    # files and processes: the profile, the database, the results: unreadable; no credential anywhere
    readable = [path for path, got in report["files"].items() if got["readable"]]
    assert readable == [], readable
    assert report["environ"] == {}
    assert [v for v in report["processes"]["prefect_variables"] if v.upper() in CREDENTIAL_VARIABLES] == []
    assert world.leaked(json.dumps(report)) == []

    # nothing changed: the server's block is intact, nothing created, no run started from the deployment
    with world.admin() as admin:
        holding = _documents_holding(admin, world.secrets["admin db_password"])
        assert world.server_doc in [doc["id"] for doc in holding]
        stolen = admin.post("/block_documents/filter", json={"block_documents": {"name": {"any_": ["tenant-stolen"]}}})
        assert stolen.json() == []
        runs = admin.post("/flow_runs/filter", json={"deployments": {"id": {"any_": [world.deployment_id]}}})
        assert runs.json() == []
        assert admin.get(f"/flow_runs/{world.run_id}").json()["state_type"] == "COMPLETED"


def test_a_hosted_sites_php_gets_nothing_from_the_api(world):
    web = world.hosting.web
    ids = {"block": world.server_doc, "artifact": world.artifact_id, "run": world.run_id}
    query = urlencode({"tenant_probe": 1, **ids})
    with httpx.Client(trust_env=False, timeout=60) as client:
        response = client.get(f"{web.url}/?{query}", headers={"Host": world.uri})
        assert response.status_code == 200, (response.status_code, response.text[:500])
        # the site itself still serves its front page
        front = client.get(f"{web.url}/", headers={"Host": world.uri})
    assert front.status_code == 200 and world.uri in front.text
    assert world.leaked(response.text) == [], world.leaked(response.text)
    report = response.json()
    assert report["user"] == "www-data"  # php-fpm's pool (tests/support/webservers.py) runs the site as www-data

    wrong = [f"{a['label']} [{a['cred']}]: {a['status']} {a['body']!r}" for a in report["api"]
             if (a["status"], a["body"]) != (401, UNAUTHORIZED)]  # fmt: skip
    assert not wrong, "the site's PHP got answers from the API:\n" + "\n".join(wrong)
    assert len(report["api"]) == 16
    assert report["getenv_auth"] is False and report["getenv_url"] is False and not report["prefect_env"]
    readable = [path for path, got in report["files"].items() if got["readable"]]
    assert readable == [], readable
    assert not any(name in report["processes"].upper() for name in CREDENTIAL_VARIABLES)
