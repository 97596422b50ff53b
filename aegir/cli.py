"""The ``aegir`` command. Fast paths (help, show, list, save) never import Prefect; task commands run
their flow in-process against the configured Prefect API and print the flow run id and its UI address."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import typer

from aegir import registry
from aegir.contexts import ContextBase
from aegir.errors import AegirError, InputError, StoreUnavailable
from aegir.records import InvalidContext

app = typer.Typer(
    help="Aegir Flows: host Drupal sites (servers → platforms → sites) with Prefect.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
server_app = typer.Typer(help="The local Prefect server that stores contexts and runs tasks.", no_args_is_help=True)
app.add_typer(server_app, name="server")


@app.callback()
def _global_options(
    no_wait: bool = typer.Option(
        False, "--no-wait", help="Fail at once when the site is busy with another task, instead of waiting"
    ),
) -> None:
    if no_wait:
        os.environ["AEGIR_NO_WAIT"] = "1"


SECRET_PROPERTIES = ("db_password", "ssh_private_key")
SECRET_SOURCES = ("-file", "-stdin", "-prompt")


def fail(error: AegirError | str, code: int = 1) -> NoReturn:
    if isinstance(error, AegirError):
        code = error.exit_code
    typer.echo("aegir: " + " | ".join(line.strip() for line in str(error).splitlines() if line.strip()), err=True)
    raise typer.Exit(code)


def guarded(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except AegirError as e:
        fail(e)


def _store():
    from blocks.store import BlockStore

    return BlockStore.from_environment()


# ---------------------------------------------------------------------------------------------------------
# save / show / list
# ---------------------------------------------------------------------------------------------------------
def _read_secret(prop: str, source: str, value: str | None) -> str:
    if source == "-file":
        if not value:
            raise InputError(f"{prop}-file", "needs a path: --" + prop + "-file=/path/to/file")
        try:
            text = Path(value).expanduser().read_text()
        except OSError as e:
            raise InputError(f"{prop}-file", f"cannot read {value}: {e.strerror}") from None
    elif source == "-stdin":
        text = sys.stdin.read()
    else:
        text = getpass.getpass(f"{prop}: ")
    if prop == "ssh_private_key":
        return text
    return text.removesuffix("\n").removesuffix("\r")


def parse_properties(args: list[str]) -> dict[str, Any]:
    """``--key=value`` / ``--key value`` pairs; secrets also as ``--key-file=PATH``, ``--key-stdin``,
    ``--key-prompt``."""
    props: dict[str, Any] = {}
    i = 0
    while i < len(args):
        token = args[i]
        if not token.startswith("--") or len(token) < 3:
            raise InputError(token, "expected --property=value")
        key, eq, value = token[2:].partition("=")
        takes_value = not key.endswith(("-stdin", "-prompt"))
        if not eq:
            value = None
            if takes_value and i + 1 < len(args) and not args[i + 1].startswith("--"):
                value, i = args[i + 1], i + 1
        elif not takes_value:
            raise InputError(key, "takes no value")
        i += 1
        source = next((s for s in SECRET_SOURCES if key.endswith(s)), None)
        if source is not None:
            prop = key[: -len(source)]
            if prop not in SECRET_PROPERTIES:
                raise InputError(key, f"{source} is only for secret properties ({', '.join(SECRET_PROPERTIES)})")
            props[prop] = _read_secret(prop, source, value)
            continue
        if value is None:
            raise InputError(key, f"needs a value: --{key}=VALUE")
        if key in SECRET_PROPERTIES and value:
            typer.echo(
                f"aegir: warning: --{key} on the command line is visible to other users; "
                f"prefer --{key}-file=PATH, --{key}-stdin or --{key}-prompt",
                err=True,
            )
        props[key] = value
    return props


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def save(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Context name, e.g. @server_master, @platform_d7, @example.com"),
    context_type: str | None = typer.Option(None, "--context_type", help="server, platform or site"),
    delete: bool = typer.Option(False, "--delete", help="Delete the context instead"),
) -> None:
    """Create a context or update only the given properties (--PROPERTY=VALUE ...; 'null' resets one).

    Secrets (db_password, ssh_private_key) can come from --PROP-file=PATH, --PROP-stdin or --PROP-prompt.
    """

    def run() -> None:
        if delete:
            if ctx.args:
                raise InputError("delete", "takes no properties")
            removed = registry.delete(_store(), name)
            typer.echo(f"Deleted {removed.context_type} {removed.name}")
            return
        props = parse_properties(ctx.args)
        store = _store()
        existed = registry.exists(store, name)
        saved = registry.save(store, name, context_type, props)
        typer.echo(
            f"{'Updated' if existed else 'Created'} {saved.context_type} {saved.name} (block {_block_ref(saved)})"
        )

    guarded(run)


def _block_ref(ctx: ContextBase) -> str:
    return f"aegir-{ctx.context_type}/{ctx.slug}"


def _format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | dict):
        return json.dumps(value) if value else "-"
    return str(value)


@app.command()
def show(
    name: str = typer.Argument(..., help="Context name"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Show a context's properties (secrets are masked)."""

    def run() -> None:
        view = registry.public_view(registry.load(_store(), name))
        if as_json:
            typer.echo(json.dumps(view, indent=2))
            return
        width = max(len(k) for k in view)
        for key, value in view.items():
            if key in ("packages", "backups", "profiles") and isinstance(value, list) and value:
                value = f"{len(value)} entries (--json for details)"
            typer.echo(f"{key.ljust(width)}  {_format_value(value)}")

    guarded(run)


def _summary(ctx: ContextBase | InvalidContext) -> str:
    if isinstance(ctx, InvalidContext):
        return f"INVALID  {ctx.field}: {ctx.message}"
    view = registry.public_view(ctx)
    if ctx.context_type == "server":
        return f"{view['remote_host']}  http={view['http_service_type']} db={view['db_service_type']}"
    if ctx.context_type == "platform":
        return f"{view['root']}  on {view['web_server']}  {view['status']}"
    return f"{view['platform']}  db={view['db_server']}  {view['status']}"


def _list_view(ctx: ContextBase | InvalidContext) -> dict[str, Any]:
    if isinstance(ctx, InvalidContext):
        invalid = {"field": ctx.field, "rule": ctx.message}
        return {"name": ctx.name, "context_type": ctx.context_type, "invalid": invalid}
    return registry.public_view(ctx)


@app.command("list")
def list_(
    context_type: str | None = typer.Option(None, "--type", help="Only server, platform or site"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """List contexts."""

    def run() -> None:
        if context_type is not None and context_type not in ("server", "platform", "site"):
            raise InputError("type", f"must be server, platform or site; got {context_type!r}")
        valid, invalid = _store().scan(context_type)
        contexts = registry.by_type([*valid, *invalid], context_type)
        if as_json:
            typer.echo(json.dumps([_list_view(c) for c in contexts], indent=2))
            return
        if not contexts:
            typer.echo("No contexts yet: create one with aegir save @server_master --context_type=server ...")
            return
        width = max(len(c.name) for c in contexts)
        for c in contexts:
            typer.echo(f"{c.name.ljust(width)}  {c.context_type:<8}  {_summary(c)}")
        if invalid:
            typer.echo(
                f"{len(invalid)} invalid context(s): tasks refuse them and backup-all skips them; fix each with "
                "`aegir save @NAME --FIELD=VALUE` (or delete it with `aegir save @NAME --delete`)",
                err=True,
            )

    guarded(run)


# ---------------------------------------------------------------------------------------------------------
# task commands
# ---------------------------------------------------------------------------------------------------------
def _connect() -> str:
    """The Prefect API to run against (reachable), exported for Prefect before it is imported."""
    store = _store()
    if not store.ping():
        raise StoreUnavailable(
            f"the Prefect API at {store.api_url} is not reachable: start it with `aegir server start`"
        )
    os.environ["PREFECT_API_URL"] = store.api_url
    return store.api_url


def _announcer(api_url: str) -> Callable[[str, str], None]:
    ui = api_url[: -len("/api")] if api_url.endswith("/api") else api_url

    def announce(run_name: str, run_id: str) -> None:
        typer.echo(f"Flow run {run_name} ({run_id})\n  see {ui}/runs/flow-run/{run_id}", err=True)

    return announce


def _finish(task: str, ok: bool, result: Any) -> Any:
    if not ok:
        # bad input found by the flow's validation keeps its exit code (2), like bad input found here
        code = result.exit_code if isinstance(result, AegirError) else 1
        reason = str(result) or type(result).__name__
        fail(f"{task} failed: {reason}", code)
    return result


def run_task_flow(flow_ref: str, **params: Any) -> Any:
    """Run a task flow in-process; print its run id and UI address; exit non-zero with the reason on failure."""
    api_url = _connect()
    from flows.runner import run_flow

    ok, result = run_flow(flow_ref, params, _announcer(api_url))
    return _finish(flow_ref.split(":")[-1].replace("_", "-"), ok, result)


VERIFY_FLOWS = {
    "server": ("flows.verify_server:verify_server", "server"),
    "platform": ("flows.verify_platform:verify_platform", "platform"),
    "site": ("flows.verify_site:verify_site", "site"),
}


@app.command()
def verify(name: str = typer.Argument(..., help="Context to verify: @server_x, @platform_x or @example.com")) -> None:
    """Verify a context: a server (directories, db and http services), a platform (build if missing, scan
    Drupal, web server config) or a site (settings, vhost, HTTP check, packages)."""

    def run() -> None:
        ctx = registry.load(_store(), name)
        flow_ref, param = VERIFY_FLOWS[ctx.context_type]
        result = run_task_flow(flow_ref, **{param: ctx.name})
        if ctx.context_type == "server":
            typer.echo(
                f"Verified {result['name']}: http={result['http_service_type']} ({result.get('http_version') or '-'})"
                f", db={result['db_service_type']} ({result.get('db_version') or '-'})"
            )
        elif ctx.context_type == "platform":
            typer.echo(f"Verified {result['name']}: Drupal {result['drupal_version']} at {result['docroot']}")
        else:
            typer.echo(f"Verified {result['name']}: {result['url']} ({result['status']})")

    guarded(run)


def _site_name(name: str) -> str:
    return registry.load_site(_store(), name).name


@app.command()
def install(
    name: str = typer.Argument(..., help="The site, e.g. @example.com (create it with aegir save first)"),
    force_reinstall: bool = typer.Option(
        False, "--force-reinstall", help="Replace an installed site (old database and files go only on success)"
    ),
) -> None:
    """Install a site: database, files, drush site-install, vhost, HTTP check, login link, welcome e-mail."""

    def run() -> None:
        result = run_task_flow(
            "flows.install_site:install_site", site=_site_name(name), force_reinstall=force_reinstall
        )
        typer.echo(f"Installed {result['name']}: {result['url']}")
        typer.echo(f"One-time login link: {result['login_link']}")
        typer.echo(f"Welcome e-mail: {result['welcome_mail']}")

    guarded(run)


@app.command("login-reset")
def login_reset(name: str = typer.Argument(..., help="The site, e.g. @example.com")) -> None:
    """Print a fresh one-time login link for the site's administrator."""

    def run() -> None:
        link = run_task_flow("flows.login_reset:login_reset", site=_site_name(name))
        typer.echo(link)

    guarded(run)


@app.command()
def disable(name: str = typer.Argument(..., help="The site, e.g. @example.com")) -> None:
    """Disable a site: it answers with the server's web_disable_url/<uri> (302) or a 'disabled' page (503)."""

    def run() -> None:
        result = run_task_flow("flows.disable_enable:disable_site", site=_site_name(name))
        typer.echo(f"Disabled {result['name']}")

    guarded(run)


@app.command()
def enable(name: str = typer.Argument(..., help="The site, e.g. @example.com")) -> None:
    """Enable a disabled site again."""

    def run() -> None:
        result = run_task_flow("flows.disable_enable:enable_site", site=_site_name(name))
        typer.echo(f"Enabled {result['name']}: {result['url']}")

    guarded(run)


@app.command()
def backup(
    name: str = typer.Argument(..., help="The site, e.g. @example.com"),
    description: str = typer.Option("Generated on request", "--description", help="Why (shown in the list)"),
    compression: str | None = typer.Option(None, "--compression", help="gzip or zstd (default: the server's)"),
) -> None:
    """Back up a site: its database and files in one checksummed archive on the master."""

    def run() -> None:
        if compression not in (None, "gzip", "zstd"):
            raise InputError("compression", f"must be gzip or zstd; got {compression!r}")
        entry = run_task_flow(
            "flows.backup_site:backup_site", site=_site_name(name), description=description, compression=compression
        )
        typer.echo(f"Backup {entry['id']}: {entry['file']} ({_size(entry['size'])})")

    guarded(run)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


@app.command()
def backups(
    name: str = typer.Argument(..., help="The site, e.g. @example.com"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """List a site's backups, newest first."""

    def run() -> None:
        site = registry.load_site(_store(), name)
        entries = sorted(site.backups, key=lambda b: b["created"], reverse=True)
        if as_json:
            typer.echo(json.dumps(entries, indent=2))
            return
        if not entries:
            typer.echo(f"{site.name} has no backups yet: aegir backup {site.name}")
            return
        width = max(len(b["id"]) for b in entries)
        for b in entries:
            pin = "pinned" if b.get("pinned") else "      "
            typer.echo(f"{b['id'].ljust(width)}  {b['created']}  {_size(b['size']):>10}  {pin}  {b.get('reason', '')}")

    guarded(run)


@app.command("backup-delete")
def backup_delete(
    name: str = typer.Argument(..., help="The site, e.g. @example.com"),
    ids: list[str] = typer.Argument(..., help="Backup ids (see aegir backups @site)"),
    force: bool = typer.Option(False, "--force", help="Also delete pinned (safety) backups"),
) -> None:
    """Delete backups of a site (their files and records)."""

    def run() -> None:
        deleted = run_task_flow("flows.backup_site:backup_delete", site=_site_name(name), ids=list(ids), force=force)
        typer.echo(f"Deleted {len(deleted)} backup(s): {', '.join(deleted)}")

    guarded(run)


@app.command("backup-all")
def backup_all(
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list the sites that are due"),
    ignore_window: bool = typer.Option(False, "--ignore-window", help="Run now, even outside the backup window"),
    default_interval: str = typer.Option("1d", "--interval", help="Back up sites whose last backup is older"),
    platform: str | None = typer.Option(None, "--platform", help="Only the sites of this platform"),
    parallel: int | None = typer.Option(
        None, "--parallel", min=1, max=32, help="Site backups under way at once (default: twice the dump slots)"
    ),
) -> None:
    """Back up every installed, enabled site that is due (oldest backup first), as the schedule does."""

    def run() -> None:
        params = {"default_interval": default_interval, "ignore_window": ignore_window, "dry_run": dry_run}
        params["parallel"] = parallel
        params["platform"] = registry.load_platform(_store(), platform).name if platform else None
        rows = run_task_flow("flows.backup_all:backup_all", **params)
        for r in rows:
            if r.get("result") == "invalid":
                typer.echo(f"{r['site']}  skipped: {r['error']}")
            elif dry_run:
                typer.echo(f"{r['site']}  due (last backup {r['last_backup'] or 'never'}, every {r['interval']})")
            else:
                typer.echo(f"{r['site']}  {r['result']}  {r['backup']}  {_size(r['size'])}")
        done = [r for r in rows if r.get("result") != "invalid"]
        typer.echo(f"{len(done)} site(s) {'due' if dry_run else 'backed up'}")

    guarded(run)


@app.command("purge-backups")
def purge_backups(
    name: str | None = typer.Argument(None, help="Only this site (default: every site)"),
    rules: list[str] | None = typer.Option(None, "--rule", help="older-than:keep-one-per, e.g. 7d:1w (repeat)"),
    max_count: int | None = typer.Option(None, "--max-count", help="At most this many backups per site"),
    max_bytes: int | None = typer.Option(None, "--max-bytes", help="At most this many bytes of backups per site"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be removed, and why"),
) -> None:
    """Remove old backups by the retention rules (default: daily for 7 days, weekly for 5 weeks, monthly for
    12 months), per site; pinned backups are never removed."""

    def run() -> None:
        params: dict[str, Any] = {"site": _site_name(name) if name else None, "dry_run": dry_run}
        params.update({k: v for k, v in (("rules", rules), ("max_count", max_count), ("max_bytes", max_bytes)) if v})
        rows = run_task_flow("flows.purge_backups:purge_backups", **params)
        for r in rows:
            if r.get("result") == "invalid":
                typer.echo(f"{r['site']}  skipped: {r['error']}")
            else:
                typer.echo(f"{r['site']}  {r['id']}  {r['created']}  {r['reason']}")
        removed = [r for r in rows if r.get("result") != "invalid"]
        typer.echo(f"{'Would remove' if dry_run else 'Removed'} {len(removed)} backup(s)")

    guarded(run)


@app.command("migrate-platform")
def migrate_platform(
    platform: str = typer.Argument(..., help="The platform whose sites move, e.g. @platform_d7_old"),
    target: str = typer.Argument(..., help="The platform they move to, e.g. @platform_d7_new"),
    canary: int = typer.Option(1, "--canary", help="Sites migrated first, one at a time"),
    parallel: int = typer.Option(2, "--parallel", help="Sites migrated at once after the canary"),
    max_failures: int = typer.Option(0, "--max-failures", help="Failures tolerated before no new ones start"),
) -> None:
    """Migrate every site of a platform to another: a canary batch first, then the rest a few at a time,
    halting when too many fail (each failed site is rolled back where it was)."""

    def run() -> None:
        store = _store()
        params = {
            "platform": registry.load_platform(store, platform).name,
            "target": registry.load_platform(store, target).name,
            "canary": canary,
            "parallel": parallel,
            "max_failures": max_failures,
        }
        rows = run_task_flow("flows.migrate_platform:migrate_platform", **params)
        for r in rows:
            typer.echo(f"{r['site']}  {r['result']}  {r.get('seconds', '')}")
        typer.echo(f"{len(rows)} site(s) migrated to {params['target']}")

    guarded(run)


@app.command()
def restore(
    name: str = typer.Argument(..., help="The site, e.g. @example.com"),
    backup_id: str = typer.Argument("latest", help="A backup id (aegir backups @site) or latest"),
) -> None:
    """Restore a site from one of its backups (a deleted site too). A safety backup is taken first; the
    current database and files are removed only after the restored site answers."""

    def run() -> None:
        result = run_task_flow("flows.restore_site:restore_site", site=_site_name(name), backup=backup_id)
        typer.echo(f"Restored {result['name']} from {result['backup']}: {result['url']}")

    guarded(run)


@app.command()
def delete(name: str = typer.Argument(..., help="The site, e.g. @example.com")) -> None:
    """Delete a disabled site: a final pinned backup, then its vhost, files, database and user. The site's
    record and backups stay (status deleted); aegir restore brings it back."""

    def run() -> None:
        result = run_task_flow("flows.delete_site:delete_site", site=_site_name(name))
        typer.echo(f"Deleted {result['name']} (final backup {result['backup']})")

    guarded(run)


@app.command()
def compare(
    name: str = typer.Argument(..., help="The site, e.g. @example.com"),
    platform: str = typer.Argument(..., help="The target platform, e.g. @platform_d7_new"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
    changed_only: bool = typer.Option(False, "--changed", help="Hide packages without a change"),
) -> None:
    """Pre-flight of a migrate: the site's enabled packages against the target platform (error = schema
    downgrade, which refuses the migrate; warning = missing or lower version; upgrade; no change). Exit 1 on
    errors. Changes nothing."""

    def run() -> None:
        from aegir.drupal.compare import Comparison, PackageChange, format_table

        target = registry.load_platform(_store(), platform).name
        result = run_task_flow("flows.compare_site:compare_site", site=_site_name(name), platform=target)
        if as_json:
            typer.echo(json.dumps(result, indent=2))
        else:
            changes = tuple(PackageChange(**row) for row in result["changes"])
            typer.echo(
                format_table(
                    Comparison(result["profile"], result["target_profile"], changes), changed_only=changed_only
                )
            )
            typer.echo(
                f"{result['site']} → {result['platform']} (Drupal {result['drupal_version']}): {result['summary']}"
            )
        if not result["ok"]:
            raise typer.Exit(1)

    guarded(run)


def _migrate(name: str, platform: str, new_uri: str | None, db_server: str | None, dry_run: bool) -> None:
    store = _store()
    params: dict[str, Any] = {
        "site": _site_name(name),
        "platform": registry.load_platform(store, platform).name,
        "new_uri": new_uri,
        "db_server": registry.load_server(store, db_server).name if db_server else None,
        "dry_run": dry_run,
    }
    result = run_task_flow("flows.migrate_site:migrate_site", **params)
    target = result["target"]
    if dry_run:
        typer.echo(
            f"Plan: {result['name']} → {target['name']} on {target['platform']}, database on {target['db_server']}"
        )
        if result["comparison"]:
            typer.echo(f"Pre-flight: {result['comparison']} (aegir compare {result['name']} {target['platform']})")
        return
    typer.echo(f"Migrated to {result['name']} on {result['platform']}: {result['url']} (backup {result['backup']})")


@app.command()
def migrate(
    name: str = typer.Argument(..., help="The site, e.g. @example.com"),
    platform: str = typer.Argument(..., help="The target platform, e.g. @platform_d7_new"),
    new_uri: str | None = typer.Option(None, "--new_uri", "--new-uri", help="A new domain (rename)"),
    db_server: str | None = typer.Option(None, "--db_server", "--db-server", help="Move the database to this server"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Pre-flight and plan only; nothing changes"),
) -> None:
    """Migrate a site to another platform (upgrade), a new domain and/or another db server: pre-flight,
    maintenance, backup, deploy, updatedb, verify; the old site goes only after the new one answers, and any
    failure rolls everything back."""
    guarded(lambda: _migrate(name, platform, new_uri, db_server, dry_run))


@app.command()
def rename(
    name: str = typer.Argument(..., help="The site, e.g. @a.example.com"),
    new_uri: str = typer.Argument(..., help="Its new domain, e.g. b.example.com"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Plan only; nothing changes"),
) -> None:
    """Rename a site (a migrate on its own platform with a new domain): paths in content follow, the old
    domain stops being served."""
    guarded(lambda: _migrate(name, registry.load_site(_store(), name).platform, new_uri, None, dry_run))


@app.command()
def clone(
    name: str = typer.Argument(..., help="The source site, e.g. @example.com"),
    new_uri: str = typer.Argument(..., help="The clone's domain, e.g. staging.example.com"),
    platform: str | None = typer.Argument(None, help="The clone's platform (default: the source's)"),
    db_server: str | None = typer.Option(None, "--db_server", "--db-server", help="The clone's db server"),
) -> None:
    """Clone a site under a new domain: its own database, user and site block; the source stays online and
    untouched."""

    def run() -> None:
        store = _store()
        result = run_task_flow(
            "flows.clone_site:clone_site",
            site=_site_name(name),
            new_uri=new_uri,
            platform=registry.load_platform(store, platform).name if platform else None,
            db_server=registry.load_server(store, db_server).name if db_server else None,
        )
        typer.echo(f"Cloned {name} to {result['name']} on {result['platform']}: {result['url']}")

    guarded(run)


@app.command()
def resume(
    flow_run_id: str = typer.Argument(..., help="The id of the interrupted (or failed) flow run"),
    force: bool = typer.Option(False, "--force", help="Take over a run still marked running on another host"),
) -> None:
    """Run an interrupted task again as the same flow run: what the interrupted attempt changed is rolled back
    (or, past its point of no return, finished) first; no step is repeated half-done."""

    def run() -> None:
        api_url = _connect()
        from flows.runner import resume_flow_run

        ok, result = resume_flow_run(flow_run_id, force, _announcer(api_url))
        _finish("resume", ok, result)
        typer.echo(f"Flow run {flow_run_id} completed")

    guarded(run)


@app.command("mail-server")
def mail_server(
    host: str = typer.Option(..., "--host", help="SMTP server host"),
    port: int = typer.Option(25, "--port", help="SMTP port"),
    security: str = typer.Option("none", "--security", help="none, starttls or ssl"),
    username: str | None = typer.Option(None, "--username", help="SMTP user"),
    password_file: Path | None = typer.Option(None, "--password-file", help="File holding the SMTP password"),
    from_address: str = typer.Option("aegir@localhost", "--from", help="Sender address"),
) -> None:
    """Configure the SMTP server Aegir sends e-mail through (block aegir-mail-server/default)."""

    def run() -> None:
        from aegir.contexts import build
        from aegir.mail import DEFAULT_NAME, MailServer

        fields: dict[str, Any] = {
            "host": host,
            "port": port,
            "security": security,
            "username": username,
            "from_address": from_address,
        }
        if password_file is not None:
            fields["password"] = _read_secret("password", "-file", str(password_file))
        settings = build(MailServer, fields)  # type: ignore[arg-type]
        _connect()
        from blocks.types import AegirMailServer

        AegirMailServer.model_validate(settings.model_dump()).save(DEFAULT_NAME, overwrite=True)
        typer.echo(f"Saved mail server {settings.host}:{settings.port} (block aegir-mail-server/{DEFAULT_NAME})")

    guarded(run)


@app.command()
def notify(
    to: list[str] | None = typer.Option(None, "--to", help="E-mail address told about failed tasks (repeat)"),
    off: bool = typer.Option(False, "--off", help="Stop notifying"),
) -> None:
    """Who is e-mailed when a task or a scheduled backup fails (block aegir-email-notification/default),
    through the mail server set with aegir mail-server."""

    def run() -> None:
        from aegir.contexts import build
        from aegir.notify import DEFAULT_NAME, Notifications

        if off == bool(to):
            raise InputError("to", "give --to ADDRESS (one or more), or --off")
        settings = None if off else build(Notifications, {"to": list(to or [])})  # type: ignore[arg-type]
        _connect()
        from blocks.notifications import AegirEmailNotification

        if settings is None:
            from prefect.exceptions import ObjectNotFound

            with contextlib.suppress(ValueError, ObjectNotFound):
                AegirEmailNotification.delete(DEFAULT_NAME)
            typer.echo("Failure notifications off")
            return
        AegirEmailNotification.model_validate(settings.model_dump()).save(DEFAULT_NAME, overwrite=True)
        typer.echo(f"Failures are e-mailed to {', '.join(settings.to)} (block aegir-email-notification/default)")

    guarded(run)


# ---------------------------------------------------------------------------------------------------------
# local Prefect server
# ---------------------------------------------------------------------------------------------------------
@server_app.command("start")
def server_start(
    port: int = typer.Option(4200, help="Port on 127.0.0.1"),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="Also serve the deployments (`aegir serve`)"),
) -> None:
    """Start a local Prefect server (SQLite, 127.0.0.1) in the background and make it the default API; and serve
    every deployment with its schedules from a background `aegir serve` (pid and log in PREFECT_HOME)."""
    from deployments import local_server

    guarded(lambda: typer.echo(local_server.start(port, serve=serve)))


@server_app.command("stop")
def server_stop() -> None:
    """Stop what `aegir server start` started: the background `aegir serve` (its deployments paused), then the
    local Prefect server."""
    from deployments import local_server

    guarded(lambda: typer.echo(local_server.stop()))


@server_app.command("status")
def server_status() -> None:
    """Say which Prefect API the CLI uses and whether it answers (exit 4 when it does not)."""
    from deployments import local_server

    message, ok = local_server.status()
    typer.echo(message)
    if not ok:
        raise typer.Exit(4)


@app.command("serve")
def serve_deployments(
    limit: int | None = typer.Option(None, "--limit", help="At most this many runs at once (default: no limit)"),
) -> None:
    """Serve every deployment of prefect.yaml from this process, with no work pool: runs triggered from the
    UI, by `prefect deployment run` or by their schedules execute here until Ctrl-C (schedules then pause)."""

    def run() -> None:
        _connect()
        from deployments import serve

        serve.serve(limit=limit)

    guarded(run)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
