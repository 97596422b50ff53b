"""Shared fixtures: real services are started on loopback by tests/support/* and stopped afterwards."""

import os

# transient-fault retries keep their count but not their delays in tests (set before tasks are imported)
os.environ.setdefault("AEGIR_TASK_RETRY_DELAYS", "0,0")

pytest_plugins = [
    "tests.support.prefect_api",
    "tests.support.sshd",
    "tests.support.webservers",
    "tests.support.mariadb",
    "tests.support.smtp",
]
