"""Contexts persisted as Prefect blocks.

``blocks.types`` holds the Block types (imports Prefect); ``blocks.store`` reads them over the REST API with
httpx only, so ``aegir show``/``list`` answer without importing Prefect.
"""
