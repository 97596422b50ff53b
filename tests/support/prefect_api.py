"""A real Prefect API for the tests: one session-scoped ``prefect_test_harness`` (its own temp SQLite DB),
with result storage in a temp dir. CLI subprocesses reach it through ``prefect_api.env``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest


@dataclass
class PrefectAPI:
    url: str
    home: Path
    env: dict[str, str] = field(repr=False)


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectAPI]:
    from prefect.settings import PREFECT_API_URL, PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    storage = tmp_path_factory.mktemp("prefect-results")
    home = tmp_path_factory.mktemp("prefect-home")
    with (
        temporary_settings({PREFECT_RESULTS_LOCAL_STORAGE_PATH: storage}),
        prefect_test_harness(server_startup_timeout=120),
    ):
        url = str(PREFECT_API_URL.value())
        env = {**os.environ, "PREFECT_API_URL": url, "PREFECT_HOME": str(home), "AEGIR_TASK_RETRY_DELAYS": "0,0"}
        yield PrefectAPI(url=url, home=home, env=env)


@pytest.fixture
def store(prefect_api: PrefectAPI):
    from blocks.store import BlockStore

    s = BlockStore(prefect_api.url)
    yield s
    s.close()
