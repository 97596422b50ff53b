"""Transports: how Aegir Flows reaches a machine (local or SSH)."""

from .base import (
    AuthenticationError,
    CommandResult,
    HostKeyError,
    SecretFile,
    Transport,
    TransportConnectionError,
    TransportError,
)
from .local import LocalTransport

__all__ = [
    "AuthenticationError",
    "CommandResult",
    "HostKeyError",
    "LocalTransport",
    "SecretFile",
    "Transport",
    "TransportConnectionError",
    "TransportError",
]
