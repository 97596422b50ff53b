"""A context as it is stored: its configuration (what a person edits) and its state (what only tasks write).

DESIGN.md §11: what a person may edit — in the Prefect UI's block form or with ``aegir save`` — is
configuration, and is validated wherever it is read. What only tasks change — status, verified, database
names and credentials, packages, backups, the journal, an installed site's platform and db server — is state,
kept in a second document per context that no edit form shows. This module is the one place that splits a
context into the two and puts it together again, validating the result; the store (blocks/store.py) only
moves the two documents.

Reading is strict: a context whose documents do not make a valid context is an :class:`InvalidContext`, named
with its field and the rule, never a half-read model. The whole fleet keeps going around it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from .contexts import MODELS, ContextBase, SiteContext, property_names
from .errors import InputError

# an installed site's platform and db server are state: once it is installed, it moves only with a task
# (migrate, rename, clone); its configuration keeps a copy that must agree
PINNED = {"site": ("platform", "db_server")}
SET_UP = ("installed", "disabled", "deleted")  # a site in these has files and a database (or their backups)
_MOVES = {"platform": "aegir migrate {name} @platform_…", "db_server": "aegir migrate {name} {platform} --db_server=@…"}


def state_fields(context_type: str) -> tuple[str, ...]:
    model = MODELS[context_type]
    return (*model.managed, *PINNED.get(context_type, ()))


def config_fields(context_type: str) -> tuple[str, ...]:
    model = MODELS[context_type]
    return tuple(f for f in property_names(model) if f not in model.managed)


@dataclass(frozen=True)
class InvalidContext:
    """A stored context that does not validate: which one, which field, which rule, and its raw data (so it
    can be fixed, deleted, and its claims on databases and platforms still seen)."""

    name: str
    context_type: str
    field: str
    message: str
    data: dict[str, Any] = field(repr=False, compare=False)

    @property
    def slug(self) -> str:
        from .contexts import slugify

        return slugify(self.name)

    def error(self) -> InvalidContextError:
        return InvalidContextError(self)

    def __str__(self) -> str:
        return f"{self.name} is invalid: {self.field}: {self.message}"


class InvalidContextError(InputError):
    """A task or command met an invalid context: names it, the field and the rule, and how to fix it."""

    def __init__(self, invalid: InvalidContext) -> None:
        self.invalid = invalid
        hint = (
            f"fix it with `aegir save {invalid.name} --{invalid.field}=…`"
            if invalid.field in config_fields(invalid.context_type)
            else f"rewrite it with `aegir save {invalid.name}`"
        )
        super().__init__(
            invalid.field,
            f"{invalid.name} ({invalid.context_type}) is invalid: {invalid.message} "
            f"({hint}, or delete it with `aegir save {invalid.name} --delete`)",
        )
        self.args = (f"{invalid.name}: {invalid.field}: {invalid.message} ({hint})",)


def split(ctx: ContextBase) -> tuple[dict[str, Any], dict[str, Any]]:
    """The context's configuration and state documents (JSON data, secrets revealed)."""
    data = dump(ctx)
    config = {f: data[f] for f in ("name", *config_fields(ctx.context_type))}
    state = {f: data[f] for f in state_fields(ctx.context_type)}
    if isinstance(ctx, SiteContext) and ctx.status not in SET_UP:
        state.update(platform=None, db_server=None)  # not installed: the configuration says where it will be
    return config, state


def split_fields(ctx: ContextBase, fields: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only these fields, each in the document(s) it belongs to (a pinned field in both)."""
    config, state = split(ctx)
    state_part = {f: state[f] for f in fields if f in state}
    if state_part:  # where an installed site is goes with every state it records (none until installed)
        state_part.update({f: state[f] for f in PINNED.get(ctx.context_type, ())})
    return {f: config[f] for f in fields if f in config}, state_part


def dump(ctx: ContextBase) -> dict[str, Any]:
    data = ctx.model_dump(mode="json")
    for f in ctx.secrets:
        value = getattr(ctx, f)
        data[f] = None if value is None else value.get_secret_value()
    return data


def merge(context_type: str, config: dict[str, Any], state: dict[str, Any] | None) -> ContextBase | InvalidContext:
    """The context of a configuration document and its state document, validated.

    Without a state document (a context stored before the two were split) its state is read from the
    configuration document, where it used to be. With one, task-managed fields in the configuration document
    mean someone wrote state by hand: the context is invalid until ``aegir save`` rewrites it."""
    model = MODELS[context_type]
    name = str(config.get("name") or "")
    raw = dict(config)
    if state is None:
        state = {f: config[f] for f in model.managed if f in config}
    else:
        stray = [f for f in model.managed if f in config]
        if stray:
            return _invalid(
                name,
                context_type,
                stray[0],
                "is task-managed state, not configuration: it is never read from "
                "the context's block (it cannot be edited there)",
                {**raw, **state},  # fmt: skip
            )
        raw.update({f: v for f, v in state.items() if f in model.managed})
    for f in PINNED.get(context_type, ()):
        held = state.get(f)
        if held is None:
            continue
        edited, raw[f] = config.get(f), held  # where the site is, whatever its block says
        if edited not in (None, held):
            move = _MOVES[f].format(name=name, platform=state.get("platform"))
            return _invalid(
                name,
                context_type,
                f,
                f"the site is installed with {f} {held}, but its block says "
                f"{edited}: a site moves only with a task (`{move}`); set it back with "
                f"`aegir save {name} --{f}={held}`",
                raw,  # fmt: skip
            )
    try:
        model_data = {k: v for k, v in raw.items() if k in model.model_fields}
        return model.model_validate(model_data)
    except Exception as e:  # noqa: BLE001 - pydantic's ValidationError, or an InputError from a validator
        error = e if isinstance(e, InputError) else InputError.from_validation(e)  # type: ignore[arg-type]
        return _invalid(name or "@?", context_type, error.field, error.message, raw)


def _invalid(name: str, context_type: str, field_: str, message: str, data: dict[str, Any]) -> InvalidContext:
    from .contexts import normalise_name

    with contextlib.suppress(InputError):  # a name that is not one is shown as stored
        name = normalise_name(name)
    return InvalidContext(name, context_type, field_, message, data)


# ---------------------------------------------------------------------------------------------------------
# what the state holds, for people: a markdown page (packages and backups as tables)
# ---------------------------------------------------------------------------------------------------------
SHOWN = {
    "server": ("verified", "http_version", "db_version"),
    "platform": ("verified", "drupal_version", "docroot"),
    "site": ("status", "platform", "db_server", "db_name", "db_user", "verified"),
}
PACKAGE_COLUMNS = ("name", "type", "version", "schema_version", "status")
BACKUP_COLUMNS = ("id", "created", "size", "pinned", "reason")
PROFILE_COLUMNS = ("name", "version")


def state_markdown(ctx: ContextBase) -> str:
    """The state of a context as the UI shows it (an artifact): its facts, then its tables. (Not the journal of
    a running task: the UI shows running tasks as flow runs, and the page is renewed only when what it shows
    changes.)"""
    lines = [f"# {ctx.name} ({ctx.context_type}): state", "", "Written by Aegir's tasks only.", ""]
    lines += [f"- **{f}**: {_cell(getattr(ctx, f, None))}" for f in SHOWN[ctx.context_type]]
    for title, attr, columns in (
        ("Backups", "backups", BACKUP_COLUMNS),
        ("Packages", "packages", PACKAGE_COLUMNS),
        ("Profiles", "profiles", PROFILE_COLUMNS),
    ):
        rows = getattr(ctx, attr, None)
        if rows is None:
            continue
        lines += ["", f"## {title} ({len(rows)})", ""]
        if rows:
            lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            lines += ["| " + " | ".join(_cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if hasattr(value, "isoformat"):
        return value.isoformat(timespec="seconds")
    return str(value).replace("|", "\\|").replace("\n", " ")
