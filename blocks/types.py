"""The Prefect Block types of the three contexts: the core models plus Prefect's Block machinery.

Fields, defaults and validation come from ``aegir.contexts`` (one definition); the block type slugs are
part of the stored data and never change.
"""

from __future__ import annotations

from prefect.blocks.core import Block

from aegir.contexts import ContextBase, PlatformContext, ServerContext, SiteContext
from aegir.mail import MailServer


class AegirServer(ServerContext, Block):
    """An Aegir server: a machine with an http service (nginx/apache) and/or a db service (mysql)."""

    _block_type_name = "Aegir Server"
    _block_type_slug = "aegir-server"
    _description = "An Aegir server context (@server_…): web and database services on one machine."


class AegirPlatform(PlatformContext, Block):
    """An Aegir platform: a Drupal codebase served by a web server."""

    _block_type_name = "Aegir Platform"
    _block_type_slug = "aegir-platform"
    _description = "An Aegir platform context (@platform_…): a Drupal codebase on a web server."


class AegirSite(SiteContext, Block):
    """An Aegir site: a Drupal site (uri) on a platform with its database on a db server."""

    _block_type_name = "Aegir Site"
    _block_type_slug = "aegir-site"
    _description = "An Aegir site context (@example.com): one Drupal site, its database and backups."


class AegirMailServer(MailServer, Block):
    """The SMTP server Aegir sends e-mail through (welcome mails with login links, notifications)."""

    _block_type_name = "Aegir Mail Server"
    _block_type_slug = "aegir-mail-server"
    _description = "SMTP server for Aegir's e-mail; Aegir uses the document named 'default'."


BLOCK_TYPES: dict[str, type[Block]] = {"server": AegirServer, "platform": AegirPlatform, "site": AegirSite}


def as_block(ctx: ContextBase) -> Block:
    return BLOCK_TYPES[ctx.context_type].model_validate(ctx.model_dump())


def register_all() -> None:
    """Register Aegir's block types so the UI can create them before any was saved."""
    from blocks.notifications import AegirEmailNotification

    for cls in (*BLOCK_TYPES.values(), AegirMailServer, AegirEmailNotification):
        cls.register_type_and_schema()
