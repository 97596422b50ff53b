"""Prefect flows: one module per Aegir task, each reading like that task's numbered steps."""
