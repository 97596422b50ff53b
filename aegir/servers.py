"""Server-level work that is not a service: Aegir's directories and facts detected on the machine."""

from __future__ import annotations

from aegir.contexts import ServerContext
from aegir.transport import Transport, TransportError

# Aegir's order (provision: http/Provision/Service/http/public.php)
WEB_GROUPS = ("www-data", "apache", "nginx", "www", "_www", "webservd", "httpd", "nogroup", "nobody")


def prepare_dirs(server: ServerContext, transport: Transport) -> list[str]:
    """Create aegir_root, config/, config/<server>/, clients/, backups/, config/includes/ with Aegir's modes."""
    root = server.aegir_root
    dirs = [
        (root, 0o755),
        (f"{root}/config", 0o711),
        (server.config_path, 0o711),
        (server.include_path, 0o711),
        (server.clients_path, 0o711),
        (server.backup_path, 0o700),
    ]
    for path, mode in dirs:
        transport.makedirs(path, mode=mode)
    global_inc = f"{server.include_path}/global.inc"
    if not transport.exists(global_inc):
        transport.write_file(global_inc, "<?php # global settings.php\n", mode=0o644)
    return [path for path, _ in dirs]


def group_exists(transport: Transport, group: str) -> bool:
    return transport.run(["getent", "group", group], check=False).exit_code == 0


def detect_web_group(transport: Transport) -> str:
    for group in WEB_GROUPS:
        if group_exists(transport, group):
            return group
    raise TransportError("no web server group found (tried " + ", ".join(WEB_GROUPS) + "): set --web_group")


def detect_php_fpm_socket(transport: Transport) -> str:
    """The newest /run/php/*fpm.sock (as Aegir does), else 127.0.0.1:9000."""
    for directory in ("/run/php", "/var/run/php"):
        if transport.is_dir(directory):
            sockets = [n for n in transport.listdir(directory) if n.endswith("fpm.sock")]
            if sockets:
                return f"{directory}/{sorted(sockets)[-1]}"
    return "127.0.0.1:9000"
