"""One jinja2 environment over ``aegir/templates`` for every config file we render.

StrictUndefined (a missing variable is an error, never an empty string in a web server config), no
autoescaping (these are config files, not HTML), ``trim_blocks``/``lstrip_blocks`` so block tags leave no
stray whitespace, and trailing newlines kept.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(template_name: str, **variables: object) -> str:
    """Render ``template_name`` (a path relative to ``aegir/templates``, e.g. ``nginx/server.conf.j2``)."""
    return environment().get_template(template_name).render(**variables)
