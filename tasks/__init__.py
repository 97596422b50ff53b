"""Prefect tasks: the retryable sub-steps of Aegir tasks, each wrapping core operations."""
