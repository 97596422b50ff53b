"""Choosing the transport for a server context."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aegir.contexts import ServerContext

from .base import Transport
from .local import LocalTransport


def transport_for(server: ServerContext) -> Transport:
    """Local for the master (localhost), SSH (paramiko) for every other server."""
    if server.is_local:
        return LocalTransport(server.remote_host)
    from .ssh import SSHTransport

    return SSHTransport(
        server.remote_host,
        port=server.ssh_port,
        user=server.ssh_user,
        private_key=server.ssh_private_key.get_secret_value() if server.ssh_private_key else None,
        host_key=server.ssh_host_key,
    )


@contextmanager
def connected(server: ServerContext) -> Iterator[Transport]:
    """A transport to ``server`` that is closed afterwards."""
    transport = transport_for(server)
    try:
        yield transport
    finally:
        transport.close()
