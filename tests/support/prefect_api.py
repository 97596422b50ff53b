"""A real Prefect API for the tests: one session-scoped ``prefect_test_harness`` (its own temp SQLite DB),
with result storage in a temp dir, and authentication on, as ``aegir server start`` runs it: the server
requires Prefect's basic auth (PREFECT_SERVER_API_AUTH_STRING) and every client must send it.

CLI subprocesses reach it through ``prefect_api.env``: its PREFECT_HOME holds a 0600 profile with the API URL
and the credential, as ``aegir server start`` writes it, so the CLI finds the credential the way it does in
production (never in its environment)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import api


@dataclass
class PrefectAPI:
    url: str
    home: Path
    env: dict[str, str] = field(repr=False)
    auth: str = field(repr=False)


def write_profile(home: Path, url: str, auth: str) -> None:
    """A private profiles.toml with the API URL and credential (what ``aegir server start`` leaves)."""
    home.chmod(0o700)
    path = home / "profiles.toml"
    path.write_text(
        f'active = "aegir"\n\n[profiles.aegir]\nPREFECT_API_URL = "{url}"\nPREFECT_API_AUTH_STRING = "{auth}"\n'
    )
    path.chmod(0o600)


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectAPI]:
    from prefect.settings import (
        PREFECT_API_AUTH_STRING,
        PREFECT_API_URL,
        PREFECT_RESULTS_LOCAL_STORAGE_PATH,
        PREFECT_SERVER_API_AUTH_STRING,
        temporary_settings,
    )
    from prefect.testing.utilities import prefect_test_harness

    storage = tmp_path_factory.mktemp("prefect-results")
    home = tmp_path_factory.mktemp("prefect-home")
    auth = "admin:" + secrets.token_urlsafe(24)
    settings = {
        PREFECT_RESULTS_LOCAL_STORAGE_PATH: storage,
        PREFECT_SERVER_API_AUTH_STRING: auth,
        PREFECT_API_AUTH_STRING: auth,
    }
    with temporary_settings(settings), prefect_test_harness(server_startup_timeout=120):
        url = str(PREFECT_API_URL.value())
        api.register(url, auth)
        write_profile(home, url, auth)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update({"PREFECT_API_URL": url, "PREFECT_HOME": str(home), "AEGIR_TASK_RETRY_DELAYS": "0,0"})
        yield PrefectAPI(url=url, home=home, env=env, auth=auth)


@pytest.fixture
def store(prefect_api: PrefectAPI):
    from blocks.store import BlockStore

    s = BlockStore(prefect_api.url, prefect_api.auth)
    yield s
    s.close()
