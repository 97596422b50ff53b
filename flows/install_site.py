"""install-site: a new Drupal site on a verified platform, served and verified (aegir-backend.md §3.1)."""

from __future__ import annotations

from typing import Any

from tasks import site as steps
from tasks.notify import task_flow
from tasks.operation import site_operation


@task_flow(name="install-site", flow_run_name="install-site {site}")
def install_site(site: str, force_reinstall: bool = False) -> dict[str, Any]:
    """Install a site: database, files, drush site-install, vhost, HTTP check, login link, welcome e-mail.

    Any failure rolls back everything done so far (database and user, site dir, vhost).

    Args:
        site: the site context name, e.g. @example.com (create it first with aegir save)
        force_reinstall: replace an installed site (its old database and files are removed only after the
            new site works)
    """
    name = steps.site_env(site).site.name
    with site_operation(name, "install-site", steps=13) as op:
        # 1. Validate: platform verified and not locked, profile and language offered, db service, not installed.
        reinstall = steps.validate_install(name, force_reinstall)
        op.push("site marked failed unless it was installed", steps.mark_failed, name)
        previous = None
        if reinstall:
            # 2. Reinstall: the old site dir is moved aside (kept until the new site works).
            previous = steps.set_aside_previous(name)
            op.push("previous site restored", steps.restore_previous, name, previous)
        # 3. Database and user with a random password, grants on exactly that database (recorded first).
        op.push("new database dropped", steps.drop_new_database, name, previous["db_name"] if previous else None)
        steps.create_database(name)
        # 4. Site directory with Aegir's modes, settings.php (cloaked credentials), CLI credentials file.
        path = steps.site_env(name).site_path
        op.push(f"{path} removed", steps.remove_site_files, name, path)
        steps.create_site_files(name)
        # 5. drush site-install with the site's profile and language.
        steps.drush_site_install(name)
        # 6. The vhost, config-tested, then a reload.
        op.push("vhost removed", steps.remove_vhost, name)
        steps.write_vhost(name)
        # 7. The site answers through the real web server with its Host header.
        steps.probe_site(name)
        # 8. Packages from the site's database.
        steps.record_packages(name)
        # 9. One-time login link (artifact), welcome e-mail to the client.
        link = steps.login_link(name)
        mail = steps.welcome_mail(name, link)
        # 10. Installed; a replaced site's old database and files are removed only now.
        result = op.commit("installed; previous copy removed", steps.finish_install, name, previous)
    return {**result, "login_link": link, "welcome_mail": mail}
