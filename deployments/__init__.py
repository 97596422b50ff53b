"""How Aegir Flows runs: the local Prefect server, serve/worker entry points, schedules."""
