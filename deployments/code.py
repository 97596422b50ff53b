"""Where the flows' code is on this host: the pull step of prefect.yaml's deployments, and serve's working dir.

A deployment's entrypoint (``flows/migrate_site.py:migrate_site``) is a path relative to the checkout of
Aegir Flows. Instead of recording one absolute path at deploy time, each worker's flow-run process changes to
the checkout installed on its own host (``pip install -e .``), so the code may live anywhere on each host.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CODE_ROOT = Path(__file__).resolve().parent.parent


def use_code_root() -> Path:
    """Make the checkout the working directory and importable (also for flow-run subprocesses)."""
    os.chdir(CODE_ROOT)
    if str(CODE_ROOT) not in sys.path:
        sys.path.insert(0, str(CODE_ROOT))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(CODE_ROOT) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(CODE_ROOT), *paths])
    return CODE_ROOT


def set_working_directory() -> dict[str, str]:
    """Pull step (``deployments.code.set_working_directory: {}``): run the flow from this host's checkout."""
    return {"directory": str(use_code_root())}
