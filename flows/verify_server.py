"""verify-server: make a server ready for Aegir and prove its services work (aegir-backend.md §3.2)."""

from __future__ import annotations

from typing import Any

from tasks import server as steps
from tasks.notify import task_flow


@task_flow(name="verify-server", flow_run_name="verify-server {server}")
def verify_server(server: str = "@server_master") -> dict[str, Any]:
    """Verify a server: directories, db service (create/grant/revoke), http service (conf, test, reload).

    Args:
        server: the server context name, e.g. @server_master
    """
    # 1. Resolve the context; an unknown name or a non-server fails before anything is touched.
    name = steps.load_server(server)
    # 2. Aegir's directories (aegir_root, config/<server>, clients, backups) and detected facts.
    detected = steps.prepare_dirs(name)
    # 3. db service: connect with the admin credentials, prove create database + grant/revoke.
    db_facts = steps.verify_db_service(name)
    # 4. http service: server conf including pre.d, vhost.d, platform.d, post.d; config test; reload.
    http_facts = steps.verify_http_service(name, detected)
    # 5. A name no site has gets 404 from our catch-all (not the OS default site's page).
    steps.probe_catch_all(name)
    # 6. Record what was found (versions, detected group/socket, verified time) on the server block.
    return steps.record_verified(name, {**detected, **db_facts, **http_facts})
