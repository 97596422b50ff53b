"""The http service of a server: nginx, apache or null.

Everything goes through a ``Transport``. Every config file is written with :meth:`HttpService.write_config`
(or removed with :meth:`HttpService.remove_config`): write atomically, run the web server's config test,
and on failure put the previous file back (or remove the new one) and raise :class:`HttpConfigError`, so
the web server can always reload.

Layout on the target (Aegir's, see reference/aegir-backend.md §2.2), for app ``A`` in {nginx, apache}::

    <aegir_root>/config/A.conf              -> <config_path>/A.conf (symlink the OS web server includes)
    <config_path>/A.conf                    server conf: catch-all vhost, then includes in this order:
    <config_path>/A/{pre.d,vhost.d,platform.d,post.d}/*
    <config_path>/A/subdir.d/               subdirectory sites

The server object is duck-typed (``aegir.contexts.ServerContext``): ``name``, ``aegir_root``,
``config_path``, ``http_service_type``, ``http_port``, ``http_restart_cmd``, ``http_config_test_cmd``.
Restart and config-test commands are run as given (no ``sudo`` added): put ``sudo …`` in the server's
``http_restart_cmd`` / ``http_config_test_cmd`` when the transport's user is not root.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from typing import Any

from aegir.services.vhost import (
    PLATFORM_CONF_MODE,
    VHOST_MODE,
    SiteVhost,
    check_abs_path,
    check_platform_name,
    vhost_template,
    vhost_variables,
)
from aegir.templating import render
from aegir.transport import CommandResult, Transport, TransportError

APP_DIR_MODE = 0o711
SUBDIR_MODE = 0o700
CONFIG_DIR_MODE = 0o711
SUBDIRS = ("pre.d", "post.d", "platform.d", "vhost.d", "subdir.d")
"""Created by verify_server inside ``app_path``; the server conf includes pre.d, vhost.d, platform.d, post.d."""

COMMAND_TIMEOUT = 120.0


class HttpConfigError(TransportError):
    """A web server config did not pass the config test; the previous state was put back."""


class HttpReloadError(TransportError):
    """The web server could not be reloaded."""


def http_service_for(server: Any) -> HttpService:
    """The http service implementation for ``server.http_service_type``."""
    kind = server.http_service_type
    try:
        cls = _SERVICES[kind]
    except KeyError:
        raise ValueError(
            f"http_service_type: unknown http service {kind!r} for {server.name} "
            f"(expected one of: {', '.join(sorted(_SERVICES))})"
        ) from None
    return cls(server)


def _split(cmd: str | None) -> list[str] | None:
    if cmd is None or not cmd.strip():
        return None
    return shlex.split(cmd)


class HttpService:
    """Common mechanics of the nginx and apache services."""

    app: str = ""
    template: str = ""
    default_config_test: tuple[str, ...] = ()
    version_binaries: tuple[str, ...] = ()

    def __init__(self, server: Any) -> None:
        self.server = server

    # -- paths ------------------------------------------------------------------------------------------
    @property
    def app_path(self) -> str:
        return posixpath.join(self.server.config_path, self.app)

    @property
    def server_conf_path(self) -> str:
        return posixpath.join(self.server.config_path, f"{self.app}.conf")

    @property
    def service_link_path(self) -> str:
        """The symlink the OS web server includes (``<aegir_root>/config/<app>.conf``)."""
        return posixpath.join(self.server.aegir_root, "config", f"{self.app}.conf")

    def dir_path(self, subdir: str) -> str:
        if subdir not in SUBDIRS:
            raise ValueError(f"unknown http config directory {subdir!r}")
        return posixpath.join(self.app_path, subdir)

    def vhost_path(self, uri: str) -> str:
        """Where a site's vhost lives (``vhost.d/<uri>``, Aegir's name)."""
        if not uri or "/" in uri or uri.startswith("."):
            raise ValueError(f"uri: {uri!r} cannot name a vhost file")
        return posixpath.join(self.app_path, "vhost.d", uri)

    # -- commands ---------------------------------------------------------------------------------------
    def config_test_argv(self) -> list[str]:
        return _split(self.server.http_config_test_cmd) or list(self.default_config_test)

    def restart_argv(self, transport: Transport | None = None) -> list[str]:
        """The configured ``http_restart_cmd``, else the per-type default (which may look at the target)."""
        return _split(self.server.http_restart_cmd) or self._default_restart_argv(transport)

    def _default_restart_argv(self, transport: Transport | None) -> list[str]:
        raise NotImplementedError

    def version_argv(self) -> list[str]:
        """``<binary> -v``; the binary is taken from a configured config-test command when it names one."""
        for cmd in (self.server.http_config_test_cmd, self.server.http_restart_cmd):
            argv = _split(cmd) or []
            if argv and argv[0] == "sudo":
                argv = argv[1:]
            if argv and posixpath.basename(argv[0]) in self.version_binaries:
                return [argv[0], "-v"]
        return [self.version_binaries[0], "-v"]

    def config_test(self, transport: Transport) -> CommandResult:
        """Run the config test; never raises for a failing test (look at ``exit_code``)."""
        return transport.run(self.config_test_argv(), check=False, timeout=COMMAND_TIMEOUT)

    def reload(self, transport: Transport) -> None:
        argv = self.restart_argv(transport)
        result = transport.run(argv, check=False, timeout=COMMAND_TIMEOUT)
        if result.exit_code != 0:
            output = (result.stderr or result.stdout).decode(errors="replace")
            raise HttpReloadError(
                f"reloading {self.app} for {self.server.name} failed{self._hint(output)}",
                command=result.argv,
                exit_code=result.exit_code,
                stderr=output,
                host=transport.host,
            )

    def _hint(self, output: str) -> str:
        """What to do about a web server's complaint that names a cause outside Aegir's files."""
        if "duplicate default server" in output:
            return (
                f": another site claims the default server of port {self.server.http_port} (Debian's "
                "/etc/nginx/sites-enabled/default): remove it - Aegir's catch-all is the default and answers 404 "
                "for names no site has"
            )
        return ""

    def version(self, transport: Transport) -> str | None:
        """The web server version string (best effort: None when the binary cannot be run)."""
        try:
            result = transport.run(self.version_argv(), check=False, timeout=COMMAND_TIMEOUT)
        except TransportError:
            return None
        if result.exit_code != 0:
            return None
        return self._parse_version((result.stdout + b"\n" + result.stderr).decode(errors="replace"))

    def _parse_version(self, text: str) -> str | None:
        raise NotImplementedError

    # -- config files -----------------------------------------------------------------------------------
    def render_server_conf(self, **overrides: Any) -> str:
        variables: dict[str, Any] = {
            "server_name": self.server.name,
            "aegir_root": self.server.aegir_root,
            "app_path": self.app_path,
            "http_port": int(self.server.http_port),
        }
        variables.update(overrides)
        return render(self.template, **variables)

    @staticmethod
    def _read_if_exists(transport: Transport, path: str) -> bytes | None:
        return transport.read_file(path) if transport.exists(path) else None

    def write_config(self, transport: Transport, path: str, content: str | bytes, mode: int = 0o600) -> bool:
        """Write one config file safely. Returns False when the file already had this content.

        The file is written atomically, then the config test runs; if it fails the previous content is
        written back (or the new file removed) and :class:`HttpConfigError` is raised with the test's
        stderr. The caller reloads (once, after all its writes).
        """
        data = content.encode() if isinstance(content, str) else bytes(content)
        previous = self._read_if_exists(transport, path)
        if previous == data:
            return False
        transport.write_file(path, data, mode=mode)
        result = self.config_test(transport)
        if result.exit_code == 0:
            return True
        if previous is None:
            transport.remove_file(path)
            undone = "the new file was removed"
        else:
            transport.write_file(path, previous, mode=mode)
            undone = "the previous version was restored"
        self._raise_config_error(transport, f"writing {path}", undone, result)
        return False  # not reached

    def remove_config(self, transport: Transport, path: str, mode: int = 0o600) -> bool:
        """Remove one config file safely (config test; on failure the file is put back, mode ``mode``).
        Returns False when there was nothing to remove."""
        previous = self._read_if_exists(transport, path)
        if previous is None:
            return False
        transport.remove_file(path)
        result = self.config_test(transport)
        if result.exit_code == 0:
            return True
        transport.write_file(path, previous, mode=mode)
        self._raise_config_error(transport, f"removing {path}", "the file was put back", result)
        return False  # not reached

    def _raise_config_error(self, transport: Transport, action: str, undone: str, failed: CommandResult) -> None:
        after = self.config_test(transport)
        if after.exit_code != 0:
            undone += "; the configuration still fails its test without this change, so another file is broken"
        output = (failed.stderr or failed.stdout).decode(errors="replace")
        raise HttpConfigError(
            f"{self.app} config test failed after {action} ({undone}){self._hint(output)}",
            command=failed.argv,
            exit_code=failed.exit_code,
            stderr=output,
            host=transport.host,
        )

    # -- site vhosts and platform configs ----------------------------------------------------------------
    has_platform_conf: bool = False
    """Only Apache has a per-platform config (as Aegir): ``<Directory>`` permissions and Drupal's rules."""

    def render_vhost(self, site: SiteVhost) -> str:
        """The site's vhost: enabled (with redirects when ``site.redirection``) or disabled."""
        return render(vhost_template(self.app, site), **vhost_variables(site))

    def write_vhost(self, transport: Transport, site: SiteVhost) -> bool:
        """Write ``vhost.d/<uri>`` (mode 0600: it holds the database credentials) through :meth:`write_config`.
        Returns False when unchanged; the caller reloads."""
        return self.write_config(transport, self.vhost_path(site.uri), self.render_vhost(site), mode=VHOST_MODE)

    def remove_vhost(self, transport: Transport, uri: str) -> bool:
        """Remove ``vhost.d/<uri>`` through :meth:`remove_config`. Returns False when there was none."""
        return self.remove_config(transport, self.vhost_path(uri), mode=VHOST_MODE)

    def platform_conf_path(self, platform_name: str) -> str:
        """``platform.d/<name without @>.conf``."""
        return posixpath.join(self.dir_path("platform.d"), f"{check_platform_name(platform_name)}.conf")

    def render_platform_conf(self, platform_name: str, docroot: str) -> str:
        """The platform config ("" when this web server has none)."""
        if not self.has_platform_conf:
            return ""
        return render(
            f"{self.app}/platform.conf.j2",
            platform=check_platform_name(platform_name),
            docroot=check_abs_path("docroot", docroot),
        )

    def write_platform_conf(self, transport: Transport, platform_name: str, docroot: str) -> bool:
        """Write the platform config through :meth:`write_config`; False when unchanged or not applicable."""
        if not self.has_platform_conf:
            return False
        return self.write_config(
            transport,
            self.platform_conf_path(platform_name),
            self.render_platform_conf(platform_name, docroot),
            mode=PLATFORM_CONF_MODE,
        )

    def remove_platform_conf(self, transport: Transport, platform_name: str) -> bool:
        if not self.has_platform_conf:
            return False
        return self.remove_config(transport, self.platform_conf_path(platform_name), mode=PLATFORM_CONF_MODE)

    def _readlink(self, transport: Transport, path: str) -> str | None:
        if not transport.exists(path):
            return None
        result = transport.run(["readlink", "--", path], check=False, timeout=COMMAND_TIMEOUT)
        return result.text.strip() if result.exit_code == 0 else ""

    def _link_service(self, transport: Transport) -> bool:
        """Point ``<aegir_root>/config/<app>.conf`` at the server conf, with the same test-or-undo safety."""
        link, target = self.service_link_path, self.server_conf_path
        old = self._readlink(transport, link)
        if old == target:
            return False
        if old == "":  # a regular file or directory is in the way: never replace it silently
            raise TransportError(
                f"{link} exists and is not a symlink; move it away so it can link to {target}",
                host=transport.host,
            )
        transport.symlink(target, link)
        result = self.config_test(transport)
        if result.exit_code == 0:
            return True
        if old is None:
            transport.remove_file(link)
            undone = "the link was removed"
        else:
            transport.symlink(old, link)
            undone = f"the link points at {old} again"
        self._raise_config_error(transport, f"linking {link} -> {target}", undone, result)
        return False  # not reached

    def _server_conf_variables(self, transport: Transport) -> dict[str, Any]:
        return {}

    def verify_server(self, transport: Transport) -> dict[str, Any]:
        """Create the config directories, write the server conf, link it, reload. Idempotent."""
        config_root = posixpath.join(self.server.aegir_root, "config")
        for path in (config_root, self.server.config_path):
            if not transport.is_dir(path):
                transport.makedirs(path, mode=CONFIG_DIR_MODE)
        transport.makedirs(self.app_path, mode=APP_DIR_MODE)
        for sub in SUBDIRS:
            transport.makedirs(posixpath.join(self.app_path, sub), mode=SUBDIR_MODE)
        conf_changed = self.write_config(
            transport,
            self.server_conf_path,
            self.render_server_conf(**self._server_conf_variables(transport)),
        )
        link_changed = self._link_service(transport)
        self.reload(transport)
        return {
            "http": self.app,
            "version": self.version(transport),
            "app_path": self.app_path,
            "server_conf": self.server_conf_path,
            "service_link": self.service_link_path,
            "server_conf_changed": conf_changed,
            "service_link_changed": link_changed,
            "config_test_cmd": shlex.join(self.config_test_argv()),
            "restart_cmd": shlex.join(self.restart_argv(transport)),
        }


class NginxService(HttpService):
    app = "nginx"
    template = "nginx/server.conf.j2"
    default_config_test = ("nginx", "-t")
    version_binaries = ("nginx",)
    init_script = "/etc/init.d/nginx"

    def _default_restart_argv(self, transport: Transport | None) -> list[str]:
        if transport is not None and transport.exists(self.init_script):
            return [self.init_script, "reload"]
        return ["nginx", "-s", "reload"]

    def _parse_version(self, text: str) -> str | None:
        m = re.search(r"nginx/\S+", text)
        return m.group(0) if m else None


class ApacheService(HttpService):
    app = "apache"
    template = "apache/server.conf.j2"
    default_config_test = ("apache2ctl", "configtest")
    default_restart = ("apache2ctl", "graceful")
    version_binaries = ("apache2", "httpd", "apache2ctl", "apachectl")
    # Where distributions keep module files (Debian, RHEL 64-bit, others); used for guarded LoadModule lines.
    module_dirs = ("/usr/lib/apache2/modules", "/usr/lib64/httpd/modules", "/usr/lib/httpd/modules")
    has_platform_conf = True

    def _default_restart_argv(self, transport: Transport | None) -> list[str]:
        return list(self.default_restart)

    def _parse_version(self, text: str) -> str | None:
        m = re.search(r"Apache/\S+(?: \([^)]*\))?", text)
        return m.group(0) if m else None

    def render_server_conf(self, **overrides: Any) -> str:
        overrides.setdefault("listen", False)
        overrides.setdefault("modules_dir", None)
        return super().render_server_conf(**overrides)

    def _server_conf_variables(self, transport: Transport) -> dict[str, Any]:
        for d in self.module_dirs:
            if transport.exists(posixpath.join(d, "mod_rewrite.so")) and transport.exists(
                posixpath.join(d, "mod_env.so")
            ):
                return {"modules_dir": d}
        return {"modules_dir": None}


class NullHttpService(HttpService):
    """No web server on this machine: every operation is a no-op."""

    app = "null"

    def restart_argv(self, transport: Transport | None = None) -> list[str]:
        return []

    def config_test_argv(self) -> list[str]:
        return []

    def verify_server(self, transport: Transport) -> dict[str, Any]:
        return {"http": "null service: skipped"}

    def write_config(self, transport: Transport, path: str, content: str | bytes, mode: int = 0o600) -> bool:
        return False

    def remove_config(self, transport: Transport, path: str, mode: int = 0o600) -> bool:
        return False

    def reload(self, transport: Transport) -> None:
        return None

    def version(self, transport: Transport) -> str | None:
        return None

    def render_vhost(self, site: SiteVhost) -> str:
        return ""

    def write_vhost(self, transport: Transport, site: SiteVhost) -> bool:
        return False

    def remove_vhost(self, transport: Transport, uri: str) -> bool:
        return False


_SERVICES: dict[str, type[HttpService]] = {
    "nginx": NginxService,
    "apache": ApacheService,
    "null": NullHttpService,
}

__all__ = [
    "ApacheService",
    "HttpConfigError",
    "HttpReloadError",
    "HttpService",
    "NginxService",
    "NullHttpService",
    "http_service_for",
]
