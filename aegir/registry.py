"""Saving, loading and deleting contexts: the rules behind ``aegir save`` (references, slugs, managed fields).

The storage itself is behind the ``ContextStore`` protocol (Prefect blocks in production, a dict in unit
tests), so these rules are tested without any server.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, Protocol

from pydantic import SecretStr

from .contexts import (
    MODELS,
    ContextBase,
    PlatformContext,
    ServerContext,
    SiteContext,
    build,
    normalise_name,
    property_names,
    settable_properties,
    slugify,
)
from .errors import InputError, NotFoundError
from .records import PINNED, SET_UP, InvalidContext, InvalidContextError

RESET = "null"  # as in Aegir: --prop=null resets a property to its default


class ContextStore(Protocol):
    def find(self, name: str) -> ContextBase | None:
        """The context whose slug is ``slugify(name)``, of any type (with secrets), or None."""
        ...

    def find_many(self, names: list[str]) -> dict[str, ContextBase]:
        """The contexts of these names that exist, keyed by slug (one round trip)."""
        ...

    def list(self, context_type: str | None = None) -> list[ContextBase]:
        """The valid contexts (of one type)."""
        ...

    def scan(self, context_type: str | None = None) -> tuple[list[ContextBase], list[InvalidContext]]:
        """The valid contexts and the invalid ones (each named with its field and rule, its raw data kept)."""
        ...

    def put(self, context: ContextBase, state: bool = True) -> None:
        """Write the context whole; with ``state`` False its task-managed state stays as stored (if any)."""
        ...

    def update(self, context: ContextBase, fields: Iterable[str]) -> bool:
        """Write only these fields of the context (the others stay as stored); False if it has no record."""
        ...

    def update_data(self, context_type: str, name: str, data: dict[str, Any]) -> bool:
        """Merge JSON data into the stored record of that type; False if there is none."""
        ...

    def remove(self, context: ContextBase | InvalidContext) -> None: ...


def load(store: ContextStore, name: str, expected: type[ContextBase] | None = None) -> Any:
    """Load ``@name``; a missing context or one of another type is an error naming it."""
    return _checked(store.find(name), name, expected)


def exists(store: ContextStore, name: str) -> bool:
    """Whether ``@name`` has a record, valid or not."""
    try:
        return store.find(name) is not None
    except InvalidContextError:
        return True


def load_each(store: ContextStore, *wanted: tuple[str, type[ContextBase]]) -> list[Any]:
    """``load`` of several (name, type) pairs in one round trip, in the order given."""
    found = store.find_many([name for name, _ in wanted])
    return [_checked(found.get(slugify(name)), name, expected) for name, expected in wanted]


def _checked(ctx: ContextBase | None, name: str, expected: type[ContextBase] | None) -> Any:
    name = normalise_name(name)
    if ctx is None or ctx.name != name:
        raise NotFoundError(f"{name}: no such context (see `aegir list`)")
    if expected is not None and not isinstance(ctx, expected):
        raise InputError("name", f"{name} is a {ctx.context_type}, not a {expected.context_type}")
    return ctx


def load_server(store: ContextStore, name: str) -> ServerContext:
    return load(store, name, ServerContext)


def load_platform(store: ContextStore, name: str) -> PlatformContext:
    return load(store, name, PlatformContext)


def load_site(store: ContextStore, name: str) -> SiteContext:
    return load(store, name, SiteContext)


def _coerce(model: type[ContextBase], field: str, raw: Any) -> Any:
    """CLI strings → field values: lists are comma separated, booleans yes/no, 'null' resets."""
    if not isinstance(raw, str):
        return raw
    annotation = str(model.model_fields[field].annotation)
    if "list" in annotation:
        return [p.strip() for p in raw.split(",") if p.strip()]
    if annotation == "<class 'bool'>":
        low = raw.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise InputError(field, f"must be true or false; got {raw!r}")
    return raw


def save(
    store: ContextStore,
    name: str,
    context_type: str | None,
    properties: Mapping[str, Any],
    *,
    allow_managed: bool = False,
) -> ContextBase:
    """Create ``@name`` or update only the given properties; validate everything before writing anything."""
    name = normalise_name(name)
    try:
        existing: ContextBase | InvalidContext | None = store.find(name)
    except InvalidContextError as e:  # saving is how an invalid context is fixed
        existing = e.invalid
    if existing is not None and existing.name != name:
        raise InputError(
            "name",
            f"{name} and the existing {existing.context_type} {existing.name} share the block name "
            f"{slugify(name)!r}; choose another name",
        )
    if existing is not None and context_type and existing.context_type != context_type:
        raise InputError("context_type", f"{name} is a {existing.context_type}; it cannot become a {context_type}")
    ctype = existing.context_type if existing is not None else context_type
    if ctype is None:
        raise InputError("context_type", "new contexts need --context_type=server|platform|site")
    if ctype not in MODELS:
        raise InputError("context_type", f"must be one of server, platform, site; got {ctype!r}")
    model = MODELS[ctype]

    known = property_names(model)
    if isinstance(existing, InvalidContext):
        data: dict[str, Any] = {k: v for k, v in existing.data.items() if k in model.model_fields}
    else:
        data = existing.model_dump() if existing is not None else {}
    for field, raw in properties.items():
        if field not in known:
            settable = ", ".join(sorted(settable_properties(model)))
            raise InputError(field, f"unknown property for a {ctype}; known: {settable}")
        if field in model.managed and not allow_managed:
            raise InputError(field, f"is managed by Aegir Flows tasks and cannot be set with save ({ctype})")
        if raw == RESET:
            data.pop(field, None)
        else:
            data[field] = _coerce(model, field, raw)
    data["name"] = name
    ctx = build(model, data)
    if isinstance(existing, ContextBase):
        check_moves(existing, ctx)
    check_references(store, ctx)
    if existing is not None:
        check_users(store, ctx)
    store.put(ctx, state=existing is None or allow_managed)
    return ctx


def check_moves(existing: ContextBase, ctx: ContextBase) -> None:
    """An installed site changes platform or db server only through a task, which moves its files and
    database (migrate, rename, clone); a save would only move the record and orphan the site."""
    if not isinstance(existing, SiteContext) or existing.status not in SET_UP:
        return
    tasks = {"platform": f"aegir migrate {ctx.name} {{value}}", "db_server": f"aegir migrate {ctx.name} "
             f"{existing.platform} --db_server={{value}}"}  # fmt: skip
    for field in PINNED["site"]:
        value = getattr(ctx, field)
        if value != getattr(existing, field):
            raise InputError(
                field,
                f"{ctx.name} is {existing.status} on {getattr(existing, field)}: it moves with "
                f"`{tasks[field].format(value=value)}`, which moves its files and database (save changes only "
                "what a task has not set up yet)",
            )


def check_references(store: ContextStore, ctx: ContextBase) -> None:
    """References name existing contexts of the right type that offer the needed service."""
    if isinstance(ctx, PlatformContext):
        web = _ref(store, ctx, "web_server", ServerContext)
        if web.http_service_type == "null":
            raise InputError("web_server", f"{web.name} has no http service (http_service_type=null)")
    elif isinstance(ctx, SiteContext):
        _ref(store, ctx, "platform", PlatformContext)
        db = _ref(store, ctx, "db_server", ServerContext)
        if db.db_service_type == "null":
            raise InputError("db_server", f"{db.name} has no db service (db_service_type=null)")


def check_users(store: ContextStore, ctx: ContextBase) -> None:
    """An updated server must still offer the services its platforms and sites use."""
    if not isinstance(ctx, ServerContext):
        return
    needs = {"web_server": ("http_service_type", "http"), "db_server": ("db_service_type", "db")}
    for other in _live(store):
        for field, (service_field, service) in needs.items():
            if getattr(other, field, None) == ctx.name and getattr(ctx, service_field) == "null":
                raise InputError(
                    service_field, f"{other.name} uses {ctx.name} as its {field}: it needs the {service} service"
                )


def _ref(store: ContextStore, ctx: ContextBase, field: str, expected: type[ContextBase]) -> Any:
    target = getattr(ctx, field)
    found = store.find(target)
    if found is None or found.name != target:
        raise InputError(field, f"{target} does not exist (create it with aegir save {target} ...)")
    if not isinstance(found, expected):
        raise InputError(field, f"{target} is a {found.context_type}, not a {expected.context_type}")
    return found


def users_of(store: ContextStore, ctx: ContextBase | InvalidContext) -> list[str]:
    """Contexts that reference ``ctx`` (a deleted site keeps no claim on its platform or servers; an invalid
    context keeps the claims its stored data makes)."""
    valid, invalid = store.scan()
    claims = [
        (c.name, [getattr(c, f) for f in c.references])
        for c in valid
        if not (isinstance(c, SiteContext) and c.status == "deleted")
    ]
    claims += [
        (c.name, [c.data.get(f) for f in MODELS[c.context_type].references])
        for c in invalid
        if c.data.get("status") != "deleted"
    ]
    return sorted(n for n, refs in claims if ctx.name in refs and n != ctx.name)


def _live(store: ContextStore) -> Iterator[ContextBase]:
    """Every valid context that can hold a claim on others: all but deleted sites."""
    return (c for c in store.list() if not (isinstance(c, SiteContext) and c.status == "deleted"))


def delete(store: ContextStore, name: str) -> ContextBase | InvalidContext:
    """Delete a context no other context uses; an invalid one too (its stored references still count)."""
    try:
        ctx: ContextBase | InvalidContext = load(store, name)
    except InvalidContextError as e:
        ctx = e.invalid
    users = users_of(store, ctx)
    if users:
        raise InputError("delete", f"{ctx.name} is still used by {', '.join(users)}; delete or move those first")
    store.remove(ctx)
    return ctx


def public_view(ctx: ContextBase) -> dict[str, Any]:
    """The context as it may be shown: secrets masked, derived paths added."""
    out: dict[str, Any] = {"name": ctx.name, "context_type": ctx.context_type}
    for field in property_names(type(ctx)):
        value = getattr(ctx, field)
        if isinstance(value, SecretStr) or field in ctx.secrets:
            value = "********" if value is not None else None
        elif hasattr(value, "isoformat"):
            value = value.isoformat()
        out[field] = value
    if isinstance(ctx, ServerContext):
        out.update(config_path=ctx.config_path, backup_path=ctx.backup_path)
    return out


def by_type(contexts: Iterable[Any], context_type: str | None) -> list[Any]:
    """Contexts (valid or not) of one type or all, in type and name order."""
    return sorted(
        (c for c in contexts if context_type is None or c.context_type == context_type),
        key=lambda c: (c.context_type, c.name),
    )
