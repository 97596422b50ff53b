"""The environment of every process Aegir Flows starts that is not a Prefect client.

The Prefect API is the control plane (DESIGN §11): it holds every secret (block documents read with
``include_secrets``), every login link (artifacts) and the power to run tasks, and it is authenticated with
Prefect's basic auth. A flow run started by a process worker or by ``aegir serve`` gets the API credential
in its *environment*, as ``PREFECT_API_AUTH_STRING`` (next to ``PREFECT_API_URL``, ``PREFECT_API_KEY``,
``PREFECT__FLOW_RUN_ID``, ...). Every child a task starts would inherit it: drush (which boots the tenant's
own, untrusted PHP code), php, mysql/mysqldump, tar, gzip/zstd, git, ssh. Anything running as that child,
or able to read its ``/proc/PID/environ``, could then call the API with the admin's rights.

So no child gets any ``PREFECT_*`` variable (the name compared case-insensitively): none of them is a Prefect
client, none needs one, and dropping the whole family also covers settings added in later Prefect versions.
Everything else (``PATH``, ``HOME``, locale, proxy settings, ...) is passed through unchanged. Secrets a child
does need reach it as an inherited pipe (``SecretFile``), never through the environment (DESIGN §10.2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

_PREFIX = "PREFECT_"


def is_prefect_variable(name: str) -> bool:
    """True for a name a child must never inherit (``PREFECT_*``, any case)."""
    return name.upper().startswith(_PREFIX)


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any ``PREFECT_*`` variable, plus ``extra`` (which may not add
    one back): the ``env=`` for every subprocess that is not a Prefect client."""
    env = {k: v for k, v in os.environ.items() if not is_prefect_variable(k)}
    for key, value in (extra or {}).items():
        if is_prefect_variable(key):
            raise ValueError(f"{key} must not be passed to a child process")
        env[key] = value
    return env
