"""Named contexts (servers, platforms, sites): their properties, naming rules, validation and derived paths.

These pydantic models are the one definition of each context's fields; ``blocks/`` turns them into Prefect
Block types by inheritance. Nothing here knows about Prefect.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from .backup_policy import compact_duration
from .errors import InputError

CONTEXT_TYPES = ("server", "platform", "site")
ContextType = Literal["server", "platform", "site"]
MASTER = "@server_master"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_PATH_RE = re.compile(r"^/[A-Za-z0-9._@+/-]*$")
_EMAIL_RE = re.compile(rf"^[A-Za-z0-9._%+-]+@{_LABEL}(\.{_LABEL})*$")
_GROUP_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_DB_IDENT_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)
_LANG_RE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})?$")

HOSTNAME_RULE = "a hostname: lowercase letters, digits, dashes and dots (e.g. example.com), at most 253 characters"
PATH_RULE = "an absolute path (starting with /) of letters, digits and . _ @ + / - (no '..', spaces or quotes)"


# --------------------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------------------
def normalise_name(name: str) -> str:
    """``example.com`` or ``@example.com`` → ``@example.com``; refuses anything that is not a valid name."""
    bare = name.strip().lstrip("@").lower()
    if not _NAME_RE.match(bare):
        raise InputError(
            "name",
            f"{name!r} is not a valid context name: use @ followed by letters, digits, '.', '_' or '-' "
            "(e.g. @server_master, @platform_d7, @example.com)",
        )
    return "@" + bare


def slugify(name: str) -> str:
    """The Prefect block document name of a context: ``@example.com`` → ``example-com``."""
    return re.sub(r"[^a-z0-9]+", "-", normalise_name(name)[1:].lower()).strip("-")


def server_name_for(host: str) -> str:
    """Aegir's naming guideline for servers: ``@server_`` + the host without dots or dashes."""
    return "@server_" + re.sub(r"[^A-Za-z0-9_]", "", host)


def platform_name_for(title: str) -> str:
    return "@platform_" + re.sub(r"[^A-Za-z0-9_]", "", title)


# --------------------------------------------------------------------------------------------------------
# field checks (shared by validators)
# --------------------------------------------------------------------------------------------------------
def check_hostname(value: str) -> str:
    v = value.strip().lower().rstrip(".")
    if len(v) > 253 or not _HOSTNAME_RE.match(v):
        raise ValueError(f"must be {HOSTNAME_RULE}; got {value!r}")
    return v


def check_path(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"must be {PATH_RULE}; got {value!r} (a relative path)")
    if not _PATH_RE.match(value) or ".." in value.split("/"):
        raise ValueError(f"must be {PATH_RULE}; got {value!r}")
    return posixpath.normpath(value).replace("//", "/")


def check_port(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"must be a port number from 1 to 65535; got {value!r}")
    return value


def check_php_fpm_socket(value: str) -> str:
    """A unix socket path or ``host:port``."""
    if value.startswith("/"):
        return check_path(value)
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"must be a socket path (/run/php/php-fpm.sock) or host:port; got {value!r}")
    return f"{check_hostname(host)}:{port}"


def check_command(value: str) -> str:
    try:
        lexer = shlex.shlex(value, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
    except ValueError as e:
        raise ValueError(f"must be a command line (split like a shell would, no pipes); {e}") from None
    if not tokens:
        raise ValueError("must not be empty")
    if any(tok and set(tok) <= set("|;&<>()") for tok in tokens):
        raise ValueError("must be one command with its arguments: pipes, ';', '&&' and redirections are not run")
    return value.strip()


def check_reference(value: str) -> str:
    return normalise_name(value)


def default_aegir_root() -> str:
    return os.environ.get("AEGIR_ROOT", "/var/aegir")


# --------------------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------------------
class ContextBase(BaseModel):
    """Common to all contexts. ``managed`` fields are written by tasks, never by ``aegir save``."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    context_type: ClassVar[str]
    references: ClassVar[tuple[str, ...]] = ()
    managed: ClassVar[tuple[str, ...]] = ("verified",)
    secrets: ClassVar[tuple[str, ...]] = ()

    name: str = Field(description="The Aegir context name, e.g. @server_master, @platform_d7, @example.com")
    verified: datetime | None = Field(None, description="When the last verify task succeeded")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return normalise_name(v)

    @property
    def slug(self) -> str:
        return slugify(self.name)


class ServerContext(ContextBase):
    """A machine that offers services (http: nginx/apache; db: mysql). ``@server_master`` is this machine."""

    context_type: ClassVar[str] = "server"
    managed: ClassVar[tuple[str, ...]] = ("verified", "http_version", "db_version")
    secrets: ClassVar[tuple[str, ...]] = ("db_password", "ssh_private_key")

    remote_host: str = Field("localhost", description="FQDN of the server (or localhost for the master)")
    transport: Literal["auto", "local", "ssh"] = Field(
        "auto", description="How to reach it: auto = local for localhost/127.0.0.1, else SSH"
    )
    aegir_root: str = Field(default_factory=default_aegir_root, description="Aegir's home on that server")
    admin_email: str | None = Field(None, description="Administrator e-mail (default admin@<remote_host>)")
    # http service
    http_service_type: Literal["nginx", "apache", "null"] = Field("null", description="Web server software")
    http_port: int = Field(80, description="Port the web server listens on for sites")
    http_restart_cmd: str | None = Field(None, description="Command that reloads the web server")
    http_config_test_cmd: str | None = Field(None, description="Command that tests the web server config")
    web_group: str | None = Field(None, description="Group the web server runs as (detected at verify)")
    php_fpm_socket: str | None = Field(
        None, description="php-fpm socket path or host:port (nginx fastcgi_pass, apache proxy_fcgi)"
    )
    web_disable_url: str | None = Field(None, description="Where disabled sites redirect to")
    # db service
    db_service_type: Literal["mysql", "null"] = Field("null", description="Database server software")
    db_host: str | None = Field(None, description="Host to reach the database server (default remote_host)")
    db_port: int = Field(3306, description="Database server port")
    db_user: str | None = Field(None, description="Database admin user (can create databases and grant)")
    db_password: SecretStr | None = Field(None, description="Database admin password")
    db_grant_all_hosts: bool = Field(False, description="Grant site users from any host ('%')")
    # ssh
    ssh_user: str = Field("aegir", description="SSH user on a remote server")
    ssh_port: int = Field(22, description="SSH port")
    ssh_private_key: SecretStr | None = Field(None, description="SSH private key (default: ssh agent/keys)")
    ssh_host_key: str | None = Field(None, description="Expected SSH host key: 'ssh-ed25519 AAAA…'")
    drush_path: str = Field("drush", description="drush to use for platforms without their own")
    delete_enabled_sites: bool = Field(
        False, description="Allow deleting sites that are not disabled first (default: disable, then delete)"
    )
    backup_compression: Literal["gzip", "zstd"] = Field(
        "gzip", description="Compression of backups kept on this server: gzip (.tar.gz, Aegir's) or zstd (faster)"
    )
    db_task_limit: int = Field(
        2, ge=1, le=64, description="Database dumps and imports that may run at once against this db server"
    )
    # recorded by verify
    http_version: str | None = Field(None, description="Web server version seen at the last verify")
    db_version: str | None = Field(None, description="Database server version seen at the last verify")

    @field_validator("remote_host")
    @classmethod
    def _host(cls, v: str) -> str:
        return check_hostname(v)

    @field_validator("db_host")
    @classmethod
    def _db_host(cls, v: str | None) -> str | None:
        return None if v is None else check_hostname(v)

    @field_validator("aegir_root")
    @classmethod
    def _root(cls, v: str) -> str:
        return check_path(v)

    @field_validator("drush_path")
    @classmethod
    def _drush(cls, v: str) -> str:
        return v if v == "drush" else check_path(v)

    @field_validator("http_port", "db_port", "ssh_port")
    @classmethod
    def _port(cls, v: int) -> int:
        return check_port(v)

    @field_validator("http_restart_cmd", "http_config_test_cmd")
    @classmethod
    def _cmd(cls, v: str | None) -> str | None:
        return None if v is None else check_command(v)

    @field_validator("web_group")
    @classmethod
    def _group(cls, v: str | None) -> str | None:
        if v is not None and not _GROUP_RE.match(v):
            raise ValueError(f"must be a Unix group name (lowercase letters, digits, _ and -); got {v!r}")
        return v

    @field_validator("php_fpm_socket")
    @classmethod
    def _fpm(cls, v: str | None) -> str | None:
        return None if v is None else check_php_fpm_socket(v)

    @field_validator("db_user", "ssh_user")
    @classmethod
    def _user(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z0-9_.-]{1,80}$", v):
            raise ValueError(f"must be a user name of letters, digits, '_', '.' and '-'; got {v!r}")
        return v

    @field_validator("admin_email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not _EMAIL_RE.match(v):
            raise ValueError(f"must be an e-mail address; got {v!r}")
        return v

    @field_validator("ssh_host_key")
    @classmethod
    def _host_key(cls, v: str | None) -> str | None:
        if v is None:
            return None
        parts = v.split()
        if len(parts) < 2 or parts[0] not in _HOST_KEY_TYPES or not re.match(r"^[A-Za-z0-9+/]+=*$", parts[1]):
            raise ValueError(
                "must be a public host key line 'TYPE BASE64' as printed by ssh-keyscan, TYPE one of "
                + ", ".join(_HOST_KEY_TYPES)
            )
        return f"{parts[0]} {parts[1]}"

    @field_validator("web_disable_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._~/%-]*)?$", v):
            raise ValueError(f"must be an http(s) URL; got {v!r}")
        return v

    @model_validator(mode="after")
    def _services(self) -> ServerContext:
        if self.db_service_type == "null":
            for f in ("db_password", "db_user"):
                if getattr(self, f) is not None:
                    raise InputError(
                        f,
                        "this server has no db service: set --db_service_type=mysql to give it database credentials",
                    )
        elif self.db_user is None:
            raise InputError("db_user", "a mysql db service needs the admin user (--db_user=…)")
        return self

    # derived ---------------------------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        if self.transport != "auto":
            return self.transport == "local"
        return self.remote_host in ("localhost", "127.0.0.1")

    @property
    def config_path(self) -> str:
        return f"{self.aegir_root}/config/{self.name[1:]}"

    @property
    def include_path(self) -> str:
        return f"{self.aegir_root}/config/includes"

    @property
    def backup_path(self) -> str:
        return f"{self.aegir_root}/backups"

    @property
    def clients_path(self) -> str:
        return f"{self.aegir_root}/clients"

    @property
    def db_address(self) -> str:
        return self.db_host or ("127.0.0.1" if self.remote_host == "localhost" else self.remote_host)


class PlatformContext(ContextBase):
    """A Drupal codebase on a web server."""

    context_type: ClassVar[str] = "platform"
    references: ClassVar[tuple[str, ...]] = ("web_server",)
    managed: ClassVar[tuple[str, ...]] = ("verified", "drupal_version", "docroot", "packages", "profiles")

    root: str = Field(description="Absolute path of the codebase")
    web_server: str = Field(MASTER, description="The server whose http service serves this platform")
    makefile: str | None = Field(None, description="drush makefile to build root from when it is missing")
    git_url: str | None = Field(None, description="git repository to clone root from when it is missing")
    git_ref: str | None = Field(None, description="git branch or tag for git_url")
    drush: str | None = Field(None, description="drush for this platform (default <root>/vendor/bin/drush)")
    status: Literal["enabled", "locked"] = Field("enabled", description="locked: no new sites or migrations")
    # recorded by verify
    drupal_version: str | None = Field(None, description="Drupal core version found at the last verify")
    docroot: str | None = Field(None, description="Web root (root, or root/web, root/docroot)")
    packages: list[dict[str, Any]] = Field(default_factory=list, description="Modules/themes found")
    profiles: list[dict[str, Any]] = Field(default_factory=list, description="Install profiles found")

    @field_validator("root")
    @classmethod
    def _root(cls, v: str) -> str:
        return check_path(v)

    @field_validator("makefile", "drush")
    @classmethod
    def _paths(cls, v: str | None) -> str | None:
        return None if v is None else check_path(v)

    @field_validator("web_server")
    @classmethod
    def _ref(cls, v: str) -> str:
        return check_reference(v)

    @field_validator("git_url")
    @classmethod
    def _git(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^(https?://|ssh://|git@|file://|/)[A-Za-z0-9._~:/@+-]+$", v):
            raise ValueError(f"must be a git URL (https://, ssh://, git@host:path, file:// or /path); got {v!r}")
        return v

    @field_validator("git_ref")
    @classmethod
    def _gitref(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z0-9._/-]+$", v) or (v or "").startswith("-"):
            raise ValueError(f"must be a branch or tag name; got {v!r}")
        return v


class SiteContext(ContextBase):
    """A Drupal site: a uri on a platform, with its database on a db server."""

    context_type: ClassVar[str] = "site"
    references: ClassVar[tuple[str, ...]] = ("platform", "db_server")
    managed: ClassVar[tuple[str, ...]] = (
        "verified",
        "status",
        "db_name",
        "db_user",
        "db_password",
        "packages",
        "backups",
        "operation",
    )
    secrets: ClassVar[tuple[str, ...]] = ("db_password",)

    uri: str = Field(description="The site's domain, e.g. example.com")
    platform: str = Field(description="The platform the site runs on, e.g. @platform_d7")
    db_server: str = Field(MASTER, description="The server whose db service holds the site's database")
    profile: str = Field("standard", description="Install profile")
    language: str = Field("en", description="Install language")
    client_email: str | None = Field(None, description="E-mail of the site's owner (admin account)")
    aliases: list[str] = Field(default_factory=list, description="Other domains served by this site")
    redirection: str | None = Field(None, description="Redirect aliases to this domain")
    status: Literal["new", "installed", "disabled", "deleted", "failed"] = Field("new", description="Site status")
    db_name: str | None = Field(None, description="The site's database (set by install)")
    db_user: str | None = Field(None, description="The site's database user (set by install)")
    db_password: SecretStr | None = Field(None, description="The site's database password (set by install)")
    packages: list[dict[str, Any]] = Field(default_factory=list, description="Modules/themes of the site")
    backups: list[dict[str, Any]] = Field(default_factory=list, description="Backups of the site")
    backup_interval: str | None = Field(
        None,
        description="How often backup-all backs this site up, e.g. 6h, 1d, 7d, 4w; off: never; empty: the "
        "backup-all default (1d)",
    )
    backup_max_count: int | None = Field(
        None, ge=1, description="purge-backups keeps at most this many of this site's backups (pinned ones not counted)"
    )
    backup_max_bytes: int | None = Field(
        None, ge=1, description="purge-backups keeps this site's backups under this many bytes (oldest go first)"
    )
    operation: dict[str, Any] | None = Field(
        None, description="The task running on the site and the undo of its steps (kept if its worker dies)"
    )

    @model_validator(mode="before")
    @classmethod
    def _default_uri(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("name") and not data.get("uri"):
            data = {**data, "uri": str(data["name"]).lstrip("@")}
        return data

    @field_validator("uri", "redirection")
    @classmethod
    def _uri(cls, v: str | None) -> str | None:
        return None if v is None else check_hostname(v)

    @field_validator("backup_interval")
    @classmethod
    def _backup_interval(cls, v: str | None) -> str | None:
        if v is None or v.strip() == "":
            return None
        if v.strip().lower() == "off":
            return "off"
        return compact_duration(v)

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(check_hostname(a) for a in v))

    @field_validator("platform", "db_server")
    @classmethod
    def _ref(cls, v: str) -> str:
        return check_reference(v)

    @field_validator("profile")
    @classmethod
    def _profile(cls, v: str) -> str:
        if not re.match(r"^[a-z][a-z0-9_]{0,63}$", v):
            raise ValueError(f"must be a profile machine name (lowercase letters, digits, _); got {v!r}")
        return v

    @field_validator("language")
    @classmethod
    def _lang(cls, v: str) -> str:
        if not _LANG_RE.match(v):
            raise ValueError(f"must be a language code such as en, de or pt-br; got {v!r}")
        return v

    @field_validator("client_email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        if v is not None and not _EMAIL_RE.match(v):
            raise ValueError(f"must be an e-mail address; got {v!r}")
        return v

    @field_validator("db_name", "db_user")
    @classmethod
    def _ident(cls, v: str | None) -> str | None:
        if v is not None and not _DB_IDENT_RE.match(v):
            raise ValueError(f"must be a database identifier (letters, digits, _; ≤ 64); got {v!r}")
        return v

    @model_validator(mode="after")
    def _uri_matches_name(self) -> SiteContext:
        if self.name[1:].lower() != self.uri:
            raise InputError(
                "uri",
                f"a site is named after its uri: expected @{self.uri}, got {self.name} (a site gets a new domain "
                f"with `aegir rename {self.name} {self.uri}`, a copy under it with "
                f"`aegir clone {self.name} {self.uri}`)",
            )
        return self


Context = ServerContext | PlatformContext | SiteContext
MODELS: dict[str, type[ContextBase]] = {
    "server": ServerContext,
    "platform": PlatformContext,
    "site": SiteContext,
}


def build(model: type[ContextBase], data: dict[str, Any]) -> ContextBase:
    """Validate ``data`` into ``model``; a validation failure becomes an InputError naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise InputError.from_validation(e) from None


def property_names(model: type[ContextBase]) -> list[str]:
    return [f for f in model.model_fields if f not in ("name",)]


def settable_properties(model: type[ContextBase]) -> list[str]:
    return [f for f in property_names(model) if f not in model.managed]
