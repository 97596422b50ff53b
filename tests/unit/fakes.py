"""In-memory stand-ins for unit tests (no Prefect, no services)."""

from __future__ import annotations

from typing import Any

from aegir.contexts import ContextBase, slugify
from aegir.records import InvalidContext


class MemoryStore:
    """The ``ContextStore`` protocol over a dict keyed by slug, as the Prefect block store keys by block name.

    Contexts are copied in and out (as blocks are serialised), and every ``put``/``remove`` is recorded in
    ``writes`` so a test can assert that a refused operation changed nothing.
    """

    def __init__(self, *contexts: ContextBase) -> None:
        self.data: dict[str, ContextBase] = {}
        self.invalid: dict[str, InvalidContext] = {}  # stored contexts that do not validate, by slug
        self.writes: list[tuple[str, str]] = []
        for ctx in contexts:
            self.data[ctx.slug] = ctx.model_copy(deep=True)

    # -- ContextStore ---------------------------------------------------------------------------------------
    def find(self, name: str) -> ContextBase | None:
        if slugify(name) in self.invalid:
            raise self.invalid[slugify(name)].error()
        ctx = self.data.get(slugify(name))
        return None if ctx is None else ctx.model_copy(deep=True)

    def find_many(self, names: list[str]) -> dict[str, ContextBase]:
        found = {slugify(n): self.find(n) for n in names}
        return {slug: ctx for slug, ctx in found.items() if ctx is not None}

    def list(self, context_type: str | None = None) -> list[ContextBase]:
        return self.scan(context_type)[0]

    def scan(self, context_type: str | None = None) -> tuple[list[ContextBase], list[InvalidContext]]:
        def wanted(c: ContextBase | InvalidContext) -> bool:
            return context_type is None or c.context_type == context_type

        valid = [ctx.model_copy(deep=True) for ctx in self.data.values() if wanted(ctx)]
        return valid, [c for c in self.invalid.values() if wanted(c)]

    def put(self, context: ContextBase, state: bool = True) -> None:
        self.writes.append(("put", context.name))
        self.invalid.pop(context.slug, None)
        current = self.data.get(context.slug)
        if not state and current is not None:  # what tasks recorded stays as stored
            managed = {f: getattr(current, f) for f in current.managed}
            context = type(context).model_validate({**context.model_dump(), **managed})
        self.data[context.slug] = context.model_copy(deep=True)

    def update(self, context: ContextBase, fields: Any) -> bool:
        return self.update_data(context.context_type, context.name, {f: getattr(context, f) for f in fields})

    def update_data(self, context_type: str, name: str, data: dict[str, Any]) -> bool:
        current = self.data.get(slugify(name))
        if current is None or current.context_type != context_type:
            return False
        self.writes.append(("update", current.name))
        self.data[current.slug] = type(current).model_validate({**current.model_dump(), **data})
        return True

    def remove(self, context: ContextBase | InvalidContext) -> None:
        self.writes.append(("remove", context.name))
        self.data.pop(context.slug, None)
        self.invalid.pop(context.slug, None)

    # -- test helpers ---------------------------------------------------------------------------------------
    def add(self, *contexts: ContextBase) -> MemoryStore:
        """Seed contexts without recording writes."""
        for ctx in contexts:
            self.data[ctx.slug] = ctx.model_copy(deep=True)
        return self

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Everything stored, secrets revealed, for before/after comparisons."""
        out = {}
        for slug, ctx in self.data.items():
            dump = ctx.model_dump()
            for field in ctx.secrets:
                value = getattr(ctx, field)
                dump[field] = None if value is None else value.get_secret_value()
            out[slug] = {"type": ctx.context_type, **dump}
        return out


def raises_input(fn: Any, field: str, *fragments: str) -> Any:
    """Call ``fn``; assert it raises an InputError naming ``field`` whose message has every fragment."""
    from aegir.errors import InputError

    try:
        fn()
    except InputError as e:
        assert e.field == field, f"expected an error on {field!r}, got {e.field!r}: {e}"
        for fragment in fragments:
            assert fragment in e.message, f"{fragment!r} not in {e.message!r}"
        return e
    raise AssertionError(f"expected InputError on {field!r}, nothing raised")
