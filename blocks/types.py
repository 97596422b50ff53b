"""The Prefect Block types of the three contexts, two per context (aegir/records.py says why):

* ``aegir-server`` / ``aegir-platform`` / ``aegir-site``: the configuration, what ``aegir save`` accepts —
  the form the Prefect UI shows and edits;
* ``aegir-server-state`` / ``aegir-platform-state`` / ``aegir-site-state``: what only tasks write (status,
  verified, database credentials, packages, backups, the journal, an installed site's platform and db server),
  stored as anonymous documents of the same name, so the UI's block list and edit forms never offer them. The
  UI shows the state as the ``state-<name>`` artifact (packages and backups as tables).

Both are made from the fields of the one definition in ``aegir.contexts``; validation is the core's (every
read of a context goes through ``aegir.records.merge``). The type slugs are part of the stored data and never
change.
"""

from __future__ import annotations

import copy
from typing import Any

from prefect.blocks.core import Block

from aegir.contexts import MODELS
from aegir.mail import MailServer
from aegir.records import PINNED, config_fields, state_fields

_TITLES = {
    "server": ("Aegir Server", "An Aegir server context (@server_…): web and database services on one machine."),
    "platform": ("Aegir Platform", "An Aegir platform context (@platform_…): a Drupal codebase on a web server."),
    "site": ("Aegir Site", "An Aegir site context (@example.com): one Drupal site on a platform and a db server."),
}


def _block_type(
    context_type: str, fields: tuple[str, ...], slug: str, title: str, description: str, optional: tuple[str, ...] = ()
) -> type[Block]:
    """A Block type holding these fields of the context's model (types, defaults and descriptions as there;
    the ``optional`` ones unset until a task sets them)."""
    model = MODELS[context_type]
    annotations: dict[str, Any] = {}
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__doc__": description,
        "_block_type_name": title,
        "_block_type_slug": slug,
        "_description": description,
    }
    for name in fields:
        info = model.model_fields[name]
        annotations[name] = info.annotation if name not in optional else info.annotation | None
        namespace[name] = copy.copy(info)
        if name in optional:
            namespace[name].default = None
    namespace["__annotations__"] = annotations
    return type("".join(w.capitalize() for w in slug.split("-")), (Block,), namespace)  # type: ignore[return-value]


CONFIG_TYPES: dict[str, type[Block]] = {
    t: _block_type(t, ("name", *config_fields(t)), f"aegir-{t}", *_TITLES[t]) for t in MODELS
}
STATE_TYPES: dict[str, type[Block]] = {
    t: _block_type(
        t,
        state_fields(t),
        f"aegir-{t}-state",
        f"{_TITLES[t][0]} State",
        f"What Aegir's tasks recorded about a {t} (written by tasks only; shown as its state-… artifact).",
        optional=PINNED.get(t, ()),  # an installed site's platform and db server: set by its tasks
    )
    for t in MODELS
}

AegirServer, AegirPlatform, AegirSite = CONFIG_TYPES["server"], CONFIG_TYPES["platform"], CONFIG_TYPES["site"]
AegirServerState, AegirPlatformState, AegirSiteState = (STATE_TYPES[t] for t in ("server", "platform", "site"))


class AegirMailServer(MailServer, Block):
    """The SMTP server Aegir sends e-mail through (welcome mails with login links, notifications)."""

    _block_type_name = "Aegir Mail Server"
    _block_type_slug = "aegir-mail-server"
    _description = "SMTP server for Aegir's e-mail; Aegir uses the document named 'default'."


def register_all() -> None:
    """Register Aegir's block types so the UI can create them before any was saved."""
    from blocks.notifications import AegirEmailNotification

    for cls in (*CONFIG_TYPES.values(), *STATE_TYPES.values(), AegirMailServer, AegirEmailNotification):
        cls.register_type_and_schema()
