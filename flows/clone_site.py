"""clone-site (aegir-backend.md §3.7): a copy of a site under a new domain, with its own database, user and
site block; the source stays online and is checked unchanged afterwards."""

from __future__ import annotations

from typing import Any

from tasks import backup as backups
from tasks import migrate as steps
from tasks import site as sites
from tasks.notify import task_flow
from tasks.operation import site_operation

CLONE_SOURCE = "Clone source (temporary)"


@task_flow(name="clone-site", flow_run_name="clone-site {site} {new_uri}")
def clone_site(site: str, new_uri: str, platform: str | None = None, db_server: str | None = None) -> dict[str, Any]:
    """Clone a site: backup of the live source, deployed under the new domain with a new database and user;
    the clone gets its own site block (no aliases). Rolled back on any failure; the source is never touched.

    Args:
        site: the source site, e.g. @example.com
        new_uri: the clone's domain, e.g. staging.example.com
        platform: the clone's platform (default: the source's)
        db_server: the clone's db server (default: the source's)
    """
    name = sites.site_env(site).site.name
    with site_operation(name, "clone-site", steps=14) as op:
        # 1. Pre-flight: the source is installed; the domain is free; the target platform passes the compare.
        sites.load_site(name)
        previous = steps.previous_location(name)
        target = steps.validate_migrate(name, platform or previous["platform"], new_uri, db_server, clone=True)
        steps.preflight(name, target)
        # 2. A backup of the live source (it stays online: consistent dump, --single-transaction).
        archive = backups.backup_archive(name, CLONE_SOURCE, None, False)
        op.push("temporary archive removed", backups.discard_archive, archive["file"])
        # 3. Deploy under the new domain: its own dir, a NEW database and user.
        planned = steps.plan_target(name, target)
        op.push("clone dir, database and vhost removed", steps.discard_target, name, target, planned)
        steps.deploy_target(name, archive, target, planned)
        # 4. Paths of the old domain in content; updatedb (another platform's code, or the same code when the
        #    database is behind it); caches.
        steps.rename_fixups(name, target, previous["uri"])
        other_code = target["platform"] != previous["platform"]
        if not steps.updatedb(name, target, when_behind=not other_code):
            steps.target_cache_clear(name, target)
        # 5. The clone's vhost, verified through the web server; the source still answers as before.
        steps.target_vhost(name, target)
        steps.probe_target(name, target)
        sites.probe_site(name, sites.site_env(name).site.status != "disabled")
        # 6. The clone's own site block; the temporary archive removed.
        return op.commit("clone recorded", steps.create_clone, name, target, archive["file"])
