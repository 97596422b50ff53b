"""Choosing the transport for a server context."""

from __future__ import annotations

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
