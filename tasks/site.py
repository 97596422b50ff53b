"""Sub-tasks of the site flows (install-site, verify-site, login-reset). Each takes the site's name and
returns plain facts; secrets (the site's database password) are read from its block when needed, never
passed between tasks or returned."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from prefect import get_run_logger
from prefect.artifacts import create_link_artifact

from aegir import registry
from aegir.contexts import PlatformContext, ServerContext, SiteContext
from aegir.drupal import site as site_files
from aegir.drupal.drush import Drush, site_url
from aegir.drupal.sitedb import site_packages
from aegir.drupal.versions import drupal_major
from aegir.errors import AegirError, InputError
from aegir.http_probe import describe, probe_address
from aegir.mail import DEFAULT_NAME, MailError, welcome_message
from aegir.services.db import MysqlService, SiteDatabases, random_password
from aegir.services.http import http_service_for
from aegir.services.vhost import DISABLED_MESSAGE, DbParams, SiteVhost
from aegir.transport import Transport
from aegir.transport.factory import connected

from .common import TRANSIENT_RETRIES, record, step, store

PROBE_TIMEOUT = 20.0


# ---------------------------------------------------------------------------------------------------------
# the site and everything it references
# ---------------------------------------------------------------------------------------------------------
@dataclass
class SiteEnv:
    site: SiteContext
    platform: PlatformContext
    web: ServerContext
    db: ServerContext

    @property
    def major(self) -> int:
        if not self.platform.drupal_version:
            raise InputError(
                "platform", f"{self.platform.name} has not been verified: run aegir verify {self.platform.name}"
            )
        return drupal_major(self.platform.drupal_version)

    @property
    def docroot(self) -> str:
        return self.platform.docroot or self.platform.root

    @property
    def site_path(self) -> str:
        return site_files.site_path(self.docroot, self.site.uri)

    @property
    def url(self) -> str:
        return site_url(self.site.uri, self.web.http_port)

    def db_params(self) -> DbParams:
        s = self.site
        if not (s.db_name and s.db_user and s.db_password):
            raise AegirError(f"{s.name} has no database recorded (install it first)")
        return DbParams(
            type="mysql",
            name=s.db_name,
            user=s.db_user,
            password=s.db_password.get_secret_value(),
            host=self.db.db_address,
            port=self.db.db_port,
        )

    def vhost(self, enabled: bool | None = None) -> SiteVhost:
        return SiteVhost(
            uri=self.site.uri,
            docroot=self.docroot,
            site_dir=f"sites/{self.site.uri}",
            http_port=self.web.http_port,
            aliases=tuple(self.site.aliases),
            redirection=self.site.redirection,
            enabled=self.site.status != "disabled" if enabled is None else enabled,
            db=self.db_params(),
            php_fpm_socket=self.web.php_fpm_socket,
            web_disable_url=self.web.web_disable_url,
        )

    def drush(self, transport: Transport) -> Drush:
        vendor = f"{self.platform.root}/vendor/bin/drush"
        executable = self.platform.drush or (vendor if transport.exists(vendor) else self.web.drush_path)
        return Drush(transport, executable, self.docroot, self.url, self.major)

    def databases(self) -> SiteDatabases:
        return SiteDatabases(MysqlService(self.db))

    def check_db_reachable(self) -> None:
        """A remote web server cannot reach a db server by the loopback address the master uses for it: such
        a db server needs ``db_host`` set to an address the web server can reach."""
        if not self.web.is_local and self.db.db_address in ("127.0.0.1", "localhost", "::1"):
            raise InputError(
                "db_server",
                f"{self.db.name} is reached as {self.db.db_address}, which {self.web.name} ({self.web.remote_host}) "
                f"cannot use: set its db_host to an address {self.web.name} can reach "
                f"(aegir save {self.db.name} --db_host=…)",
            )

    def grant_hosts(self, conn: Any) -> list[str]:
        """The hosts the site's database user is granted from: those of the db server (itself as it sees us,
        127.0.0.1, localhost) plus, for a remote web server, that server as the db server sees it."""
        databases = self.databases()
        if self.web.is_local:
            return databases.grant_hosts(conn)
        with connected(self.web) as transport:
            return databases.grant_hosts(conn, [databases.service.seen_from(transport)])


def site_env(name: str) -> SiteEnv:
    """The site and the contexts it runs on, in two round trips (three when the web and db servers differ)."""
    s = store()
    site = registry.load_site(s, name)
    platform, db = registry.load_each(s, (site.platform, PlatformContext), (site.db_server, ServerContext))
    web = db if platform.web_server == db.name else registry.load_server(s, platform.web_server)
    return SiteEnv(site, platform, web, db)


def write_files(env: SiteEnv, transport: Transport) -> None:
    """The site dir from the record: groups and modes of everything in it (repairing drift), the hash salt
    (made once), settings.php and the credentials file, sites.php."""
    group = env.web.web_group
    site_files.set_permissions(transport, env.site_path, group)
    site_files.ensure_salt(transport, env.site_path, group)
    site_files.write_settings(
        transport,
        env.site_path,
        major=env.major,
        uri=env.site.uri,
        profile=env.site.profile,
        aliases=env.site.aliases,
        include_path=env.web.include_path,
        db=env.db_params(),
        web_group=group,
    )
    site_files.update_sites_php(transport, env.docroot, env.site.uri, env.site.aliases)


def stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S")


def apply_vhost(env: SiteEnv, transport: Transport, enabled: bool | None = None, always_reload: bool = True) -> bool:
    """Write the site's vhost (config-tested; the previous one is restored if the test fails), then one
    reload — always (verify: what is on disk is what runs), or only if it changed (undo steps: a rollback must
    not depend on a reload that nothing needs)."""
    http = http_service_for(env.web)
    changed = http.write_vhost(transport, env.vhost(enabled))
    if changed or always_reload:
        http.reload(transport)
    return changed


def record_credentials(env: SiteEnv, creds: DbParams | None, status: str) -> SiteEnv:
    """Make the site record name the database a site dir's credentials file holds (and ``status``)."""
    facts: dict[str, Any] = {"status": status}
    if creds is not None:
        facts.update(db_name=creds.name, db_user=creds.user, db_password=creds.password)
    return SiteEnv(record(env.site, **facts), env.platform, env.web, env.db)  # type: ignore[arg-type]


def remove_previous_site(env: SiteEnv, previous: dict[str, Any]) -> list[str]:
    """Once the new site works: drop the previous database and user (exactly those the previous record named)
    and remove the previous site dir (``previous``: db_name, db_user, aside)."""
    removed: list[str] = []
    if previous["db_name"] and previous["db_name"] != env.site.db_name:
        removed = SiteDatabases(MysqlService(env.db)).destroy(previous["db_name"], previous["db_user"])
    if previous["aside"]:
        with connected(env.web) as transport:
            transport.remove_tree(previous["aside"])
        removed.append(previous["aside"])
    get_run_logger().info("previous site removed: %s", ", ".join(removed) or "nothing")
    return removed


# ---------------------------------------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------------------------------------
@step("validate-install")
def validate_install(name: str, force_reinstall: bool) -> bool:
    """Everything install needs, checked before anything is touched. Returns True for a reinstall."""
    env = site_env(name)
    site, platform = env.site, env.platform
    if site.status in ("installed", "disabled") and not force_reinstall:
        raise InputError(
            "site", f"{site.name} is already installed; --force-reinstall replaces it (database and files)"
        )
    if platform.verified is None or not platform.profiles:
        raise InputError("platform", f"{platform.name} has not been verified: run aegir verify {platform.name}")
    if platform.status == "locked":
        raise InputError("platform", f"{platform.name} is locked: no new sites can be installed on it")
    if env.web.http_service_type == "null":
        raise InputError("platform", f"{platform.name}: its web server {env.web.name} has no http service")
    if env.db.db_service_type != "mysql":
        raise InputError("db_server", f"{env.db.name} has no db service (db_service_type=mysql needed)")
    env.check_db_reachable()
    profiles = {p["name"]: p for p in platform.profiles}
    if site.profile not in profiles:
        raise InputError(
            "profile", f"{platform.name} offers no profile {site.profile!r}; it has: {', '.join(sorted(profiles))}"
        )
    languages = profiles[site.profile].get("languages") or ["en"]
    if site.language not in languages:
        raise InputError(
            "language",
            f"profile {site.profile} on {platform.name} offers no language {site.language!r}; "
            f"it has: {', '.join(languages)}",
        )
    reinstall = site.status in ("installed", "disabled")
    if not reinstall:
        with connected(env.web) as transport:
            if transport.exists(f"{env.site_path}/settings.php"):
                raise InputError(
                    "uri", f"{env.site_path} already holds a site that Aegir does not know: move it away first"
                )
    MysqlService(env.db).version()  # the db server answers with the admin credentials
    return reinstall


@step("set-aside-previous")
def set_aside_previous(name: str) -> dict[str, Any]:
    """Reinstall: keep the old site dir (moved aside) and the old database until the new site works."""
    env = site_env(name)
    with connected(env.web) as transport:
        aside = site_files.move_aside(transport, env.site_path, stamp())
    return {"aside": aside, "db_name": env.site.db_name, "db_user": env.site.db_user, "status": env.site.status}


@step("restore-previous")
def restore_previous(name: str, previous: dict[str, Any]) -> None:
    """Undo of set-aside-previous: the old site dir and its database credentials back, status as before."""
    env = site_env(name)
    with connected(env.web) as transport:
        if previous["aside"] and transport.exists(previous["aside"]):
            transport.remove_tree(env.site_path)
            site_files.move_dir(transport, previous["aside"], env.site_path)
            # remove-site-files took the site out of sites.php: without it Drupal 8+ would not find it
            site_files.update_sites_php(transport, env.docroot, env.site.uri, env.site.aliases)
        env = record_credentials(env, site_files.read_credentials(transport, env.site_path), previous["status"])
        apply_vhost(env, transport, always_reload=False)


@step("create-database", **TRANSIENT_RETRIES)
def create_database(name: str) -> dict[str, str]:
    """A new database and user (random password) with grants on exactly that database; recorded on the
    site block first, so whatever happens next, the record names what exists."""
    env = site_env(name)
    databases = env.databases()
    with databases.service.connect() as conn:
        db_name = databases.free_name(conn, env.site.uri)
        hosts = env.grant_hosts(conn)
    password = random_password()
    record(env.site, db_name=db_name, db_user=db_name, db_password=password)
    databases.create(db_name, db_name, password, hosts)
    get_run_logger().info("database %s and user %s created on %s (hosts %s)", db_name, db_name, env.db.name, hosts)
    return {"db_server": env.db.name, "db_name": db_name, "db_user": db_name}


@step("drop-new-database", **TRANSIENT_RETRIES)
def drop_new_database(name: str, keep: str | None) -> list[str]:
    """Undo of create-database: drop exactly the database and user the site record names (create-database
    records them before creating them) — unless it is ``keep``, a replaced site's own database."""
    env = site_env(name)
    if not env.site.db_name or env.site.db_name == keep:
        return []
    removed = env.databases().destroy(env.site.db_name, env.site.db_user)
    record(env.site, db_name=None, db_user=None, db_password=None)
    get_run_logger().info("removed %s", ", ".join(removed) or "nothing (never created)")
    return removed


@step("create-site-files", **TRANSIENT_RETRIES)
def create_site_files(name: str) -> str:
    """sites/<uri> with Aegir's modes, the hash salt, settings.php (cloaked), the CLI credentials file,
    aliases in sites.php."""
    env = site_env(name)
    with connected(env.web) as transport:
        write_files(env, transport)
    return env.site_path


@step("remove-site-files")
def remove_site_files(name: str, path: str) -> None:
    env = site_env(name)
    with connected(env.web) as transport:
        transport.remove_tree(path)
        site_files.unmap_sites_php(transport, env.docroot, env.site.uri)


@step("drush-site-install")
def drush_site_install(name: str) -> None:
    """drush site-install (7) / site:install (8+) with the site's profile and language."""
    env = site_env(name)
    site = env.site
    mail = site.client_email or env.web.admin_email or f"webmaster@{site.uri}"
    with connected(env.web) as transport:
        out = env.drush(transport).site_install(
            site.profile,
            sites_subdir=site.uri,
            site_name=site.uri,
            site_mail=mail,
            account_mail=mail,
            locale=site.language,
        )
        # what drush made (files/.htaccess, the profile's files) gets the site's groups and modes
        site_files.set_permissions(transport, env.site_path, env.web.web_group)
    get_run_logger().info("drush: %s", " | ".join(line.strip() for line in out.splitlines() if line.strip()))


@step("write-vhost", **TRANSIENT_RETRIES)
def write_vhost(name: str, enabled: bool | None = None) -> bool:
    """The site's vhost (config-tested; the previous one is restored if the test fails), then one reload.
    ``enabled`` overrides what the site's status says (disable/enable write the other variant first)."""
    env = site_env(name)
    with connected(env.web) as transport:
        return apply_vhost(env, transport, enabled)


@step("restore-vhost")
def restore_vhost(name: str) -> bool:
    """Undo step: the vhost the site record describes, back in place; a reload only if it had changed."""
    env = site_env(name)
    with connected(env.web) as transport:
        return apply_vhost(env, transport, always_reload=False)


@step("remove-vhost")
def remove_vhost(name: str) -> None:
    env = site_env(name)
    http = http_service_for(env.web)
    with connected(env.web) as transport:
        if http.remove_vhost(transport, env.site.uri):
            http.reload(transport)


def expected_answer(env: SiteEnv, enabled: bool) -> tuple[int, str]:
    """What GET / must answer: 200 with the site name; disabled, a 302 to web_disable_url/<uri> or a 503."""
    if enabled:
        return 200, env.site.uri
    if env.web.web_disable_url:
        return 302, f"{env.web.web_disable_url.rstrip('/')}/{env.site.uri}"
    return 503, DISABLED_MESSAGE


PROBE_PAGE = "/user/login"
"""The page that proves a site works: every Drupal has it, anonymous visitors get it (200), and answering it
bootstraps Drupal fully: the session, the hash salt (Drupal 8+ fails without one), the theme."""


def probe(env: SiteEnv, enabled: bool = True) -> dict[str, Any]:
    """The site works, through the real web server with its Host header. Enabled: ``GET /`` answers 200 with
    its name, and so does an uncached, fully bootstrapped page — :data:`PROBE_PAGE` with a query string no
    page cache has seen (a 200 a page cache answered, ``X-Drupal-Cache: HIT``, proves nothing): a front page
    from the page cache can be fine while every other page fails (Drupal 10 without a readable hash salt).
    Disabled: the disabled answer. A reload is asynchronous (old workers may answer for a moment), so this
    waits for up to 20 s."""
    status, text = expected_answer(env, enabled)
    base = f"http://{probe_address(env.web)}:{env.web.http_port}"
    checks = [("/", status, text)]
    if enabled:  # a fresh query string for every attempt: never one a page cache has stored
        checks.append((PROBE_PAGE + "?aegir-probe=", 200, f"| {env.site.uri}</title>"))
    hidden = [env.site.db_password.get_secret_value()] if env.site.db_password else []
    hidden += [quote(h, safe="") for h in hidden]
    deadline = time.monotonic() + PROBE_TIMEOUT
    answers: dict[str, Any] = {}
    with httpx.Client(trust_env=False, timeout=10.0, follow_redirects=False) as client:
        for path, want, expected in checks:
            seen = "no answer"
            while True:
                url = base + path + (secrets.token_hex(8) if path.endswith("=") else "")
                try:
                    response = client.get(url, headers={"Host": env.site.uri})
                    answer = response.headers.get("location", "") if want == 302 else response.text
                    cached = response.headers.get("x-drupal-cache", "").upper() == "HIT" and path != "/"
                    if response.status_code == want and expected in answer and not cached:
                        answers[path.split("?")[0]] = response.status_code
                        break
                    seen = describe(response, hidden)
                    if response.status_code == want and not cached:
                        seen = f"HTTP {want} without {expected!r} ({seen})"
                    elif cached:
                        seen = f"a page cache's answer (X-Drupal-Cache: HIT), not Drupal's ({seen})"
                except httpx.HTTPError as e:
                    seen = f"{type(e).__name__}: {e}"
                if time.monotonic() > deadline:
                    raise AegirError(
                        f"{env.site.uri} does not answer through {env.web.name} ({url}, Host: "
                        f"{env.site.uri}): expected HTTP {want} with {expected!r}, got {seen}"
                    )
                time.sleep(0.25)
    get_run_logger().info("%s answers %s through %s", env.site.uri, answers, base)
    return {"status": answers["/"], "pages": answers}


@step("probe-site")
def probe_site(name: str, enabled: bool = True) -> dict[str, Any]:
    """The site answers through the real web server (see :func:`probe`)."""
    return probe(site_env(name), enabled)


def read_packages(env: SiteEnv, platform_packages: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The site's modules and themes as its database has them now (status, schema version, the post-updates
    run), versions from ``platform_packages`` (default: the platform's recorded scan)."""
    service = MysqlService(env.db)
    with service.connect(env.site.db_name) as conn:
        return site_packages(
            lambda sql, *args: service.execute(conn, sql, args),
            env.major,
            env.platform.packages if platform_packages is None else platform_packages,
        )


@step("record-packages", **TRANSIENT_RETRIES)
def record_packages(name: str) -> int:
    """The site's modules and themes from its database (status, schema version), versions from the platform."""
    env = site_env(name)
    packages = read_packages(env)
    record(env.site, packages=packages)
    enabled = sum(1 for p in packages if p["status"] == "enabled")
    get_run_logger().info("%s: %d packages, %d enabled", env.site.uri, len(packages), enabled)
    return enabled


@step("login-link", **TRANSIENT_RETRIES)
def login_link(name: str) -> str:
    """A one-time login link for the site's admin (drush uli / user:login), shown as a link artifact."""
    env = site_env(name)
    with connected(env.web) as transport:
        link = env.drush(transport).user_login()
    create_link_artifact(
        link=link,
        link_text=f"One-time login for {env.site.uri} (valid 24 h, usable once)",
        key=f"login-{env.site.slug}",
        description=f"Administrator login link for {env.site.uri}",
    )
    return link


@step("welcome-mail", **TRANSIENT_RETRIES)
def welcome_mail(name: str, link: str) -> str:
    """Mail the login link to the site's client_email through the configured mail server."""
    env = site_env(name)
    logger = get_run_logger()
    if not env.site.client_email:
        logger.info("no client_email on %s: no welcome e-mail", env.site.name)
        return "skipped: no client_email"
    from blocks.types import AegirMailServer

    try:
        server = AegirMailServer.load(DEFAULT_NAME)
    except ValueError:
        logger.warning(
            "no mail server configured (aegir mail-server --host=…): welcome e-mail to %s not sent",
            env.site.client_email,
        )
        return "skipped: no mail server"
    try:
        server.send(welcome_message(uri=env.site.uri, to=env.site.client_email, login_link=link, site_url=env.url))
    except MailError as e:
        # the site works: a mail server problem is reported, never a reason to take the site down again
        logger.warning(
            "welcome e-mail to %s NOT sent: %s (aegir login-reset gives a new link)", env.site.client_email, e
        )
        return f"not sent: {e}"
    logger.info("welcome e-mail sent to %s", env.site.client_email)
    return f"sent to {env.site.client_email}"


@step("finish-install")
def finish_install(name: str, previous: dict[str, Any] | None) -> dict[str, Any]:
    """Status installed; on a reinstall, only now remove the previous site dir and database."""
    env = site_env(name)
    saved = record(env.site, status="installed", verified=datetime.now(UTC))
    if previous:
        remove_previous_site(env, previous)
    return {"name": saved.name, "uri": env.site.uri, "url": env.url, "db_name": env.site.db_name}


@step("mark-failed")
def mark_failed(name: str) -> None:
    site = registry.load_site(store(), name)
    if site.status not in ("installed", "disabled"):
        record(site, status="failed")


# ---------------------------------------------------------------------------------------------------------
# verify / login-reset
# ---------------------------------------------------------------------------------------------------------
@step("load-site")
def load_site(name: str) -> str:
    """The site must be installed (or disabled) on a verified platform."""
    return require_status.fn(name, "installed", "disabled")


@step("write-site-files", **TRANSIENT_RETRIES)
def write_site_files(name: str) -> str:
    """Regenerate settings.php and the credentials file from the record; fix directory modes."""
    return create_site_files.fn(name)


@step("require-status")
def require_status(name: str, *allowed: str) -> str:
    """The site must be in one of the ``allowed`` states (e.g. disable needs an installed site)."""
    env = site_env(name)
    if env.site.status not in allowed:
        hint = f" (aegir install {env.site.name})" if env.site.status in ("new", "failed") else ""
        raise InputError(
            "site", f"{env.site.name} is {env.site.status}; this task needs it {' or '.join(allowed)}{hint}"
        )
    env.db_params()
    return env.site.name


@step("set-status")
def set_status(name: str, status: str) -> str:
    """Record the site's status; returns the previous one (for the undo)."""
    site = registry.load_site(store(), name)
    record(site, status=status)
    return site.status


@step("record-verified")
def record_verified(name: str) -> dict[str, Any]:
    env = site_env(name)
    saved = record(env.site, verified=datetime.now(UTC))
    return {"name": saved.name, "uri": env.site.uri, "url": env.url, "status": env.site.status}
