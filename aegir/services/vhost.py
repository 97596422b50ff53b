"""What a site's vhost needs (:class:`SiteVhost`) and the variables its nginx / apache templates get.

The vhost hands the site's database credentials to PHP (Aegir's *credential cloaking*, see
reference/aegir-backend.md §2.3): nginx ``fastcgi_param db_*`` / apache ``SetEnv db_*``, every value
urlencoded (``urllib.parse.quote(value, safe="")``: only ``A-Z a-z 0-9 _ . - ~`` and ``%XX`` reach the
config file, so no password can break out of a directive). settings.php urldecodes them and unsets them.

Every other value that is interpolated into a config file is checked here (an :class:`InputError`, a
``ValueError`` naming the field): host names, paths, the php-fpm address, the disable URL.

Variants (rendered by :meth:`aegir.services.http.HttpService.render_vhost`):

* enabled: the site, PHP through php-fpm with only ``/index.php`` executed, ``/files/…`` →
  ``/sites/<uri>/files/…``, private files denied;
* ``redirection`` set: the canonical host is ``redirection`` when it is the uri or one of the aliases, and every
  other name answers ``301`` to ``<scheme>://<redirection><request uri>`` (Aegir's Apache semantics). When
  ``redirection`` is some other host, the uri is served and the aliases answer the 301;
* disabled (``enabled=False``): every name answers ``302`` to ``<web_disable_url>/<uri>``, or, when no
  ``web_disable_url`` is set, ``503`` with the plain text :data:`DISABLED_MESSAGE` (Aegir's default target, the
  hosting front end's ``/hosting/disabled`` page, does not exist here and a URL on the site itself would loop).
  ``/.well-known/acme-challenge/`` keeps being served from the docroot in both cases.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aegir.contexts import check_hostname, check_path, check_php_fpm_socket, check_port
from aegir.errors import InputError

VHOST_MODE = 0o600
"""Vhost files hold database credentials: owner only (their directory, vhost.d, is 0700)."""
PLATFORM_CONF_MODE = 0o600

DISABLED_MESSAGE = "This site has been disabled by the site administrators"
DEFAULT_NGINX_FASTCGI = "127.0.0.1:9000"
"""nginx's php-fpm upstream when the server names none (Aegir's fallback). Apache without a socket leaves
PHP to the OS configuration (mod_php, or Debian's ``a2enconf php8.2-fpm``)."""

DB_KEYS = ("db_type", "db_name", "db_user", "db_passwd", "db_host", "db_port")
"""The variables the vhost hands PHP, in Aegir's order and with Aegir's names."""

_SITE_DIR_RE = re.compile(r"^sites/[A-Za-z0-9._-]+$")
_DB_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_URL_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(?::\d{1,5})?(?:/[A-Za-z0-9._~/%-]*)?$")
_PLATFORM_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")


# -- checks ---------------------------------------------------------------------------------------------------
def _checked(field: str, check: Callable[[Any], Any], value: Any) -> Any:
    """Run one of the context field checks; its complaint becomes an :class:`InputError` naming ``field``."""
    try:
        return check(value)
    except (ValueError, TypeError, AttributeError) as e:
        raise InputError(field, str(e) if isinstance(e, ValueError) else f"must be a string; got {value!r}") from None


def check_host(field: str, value: Any) -> str:
    """A lowercase DNS name (no quotes, spaces, ``;``, braces, newlines …) or :class:`InputError`."""
    if _checked(field, check_hostname, value) != value:
        raise InputError(field, f"must be a lowercase hostname without a trailing dot; got {value!r}")
    return value


def check_abs_path(field: str, value: Any) -> str:
    """An absolute path of ``A-Z a-z 0-9 . _ @ + / -`` without ``..``, normalised (no trailing ``/``)."""
    return _checked(field, check_path, value)


def check_port_field(field: str, value: Any) -> int:
    return _checked(field, check_port, value)


def check_php_fpm(field: str, value: Any) -> str:
    """A unix socket path or ``host:port``."""
    return _checked(field, check_php_fpm_socket, value)


def check_url(field: str, value: Any) -> str:
    if not isinstance(value, str) or not _URL_RE.match(value):
        raise InputError(field, f"must be an http(s) URL of letters, digits and . _ ~ / % -; got {value!r}")
    return value.rstrip("/")


def check_platform_name(value: Any) -> str:
    """``@platform_x`` or ``platform_x`` → ``platform_x`` (the platform conf's file name without ``.conf``)."""
    bare = value[1:] if isinstance(value, str) and value.startswith("@") else value
    if not isinstance(bare, str) or not _PLATFORM_RE.match(bare):
        raise InputError("platform", f"{value!r} cannot name a platform config file")
    return bare


def urlencode(value: str | int) -> str:
    """The value as the vhost writes it (and settings.php / the credentials file urldecode it)."""
    return quote(str(value), safe="")


# -- data -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DbParams:
    """The database credentials the vhost hands PHP. ``repr`` never shows the password."""

    type: str
    name: str
    user: str
    password: str
    host: str
    port: int

    def __post_init__(self) -> None:
        if not isinstance(self.type, str) or not _DB_TYPE_RE.match(self.type):
            raise InputError("db_type", f"must be a database driver name such as 'mysql'; got {self.type!r}")
        for field, value in (("db_name", self.name), ("db_user", self.user), ("db_host", self.host)):
            if not isinstance(value, str) or not value:
                raise InputError(field, "must be a non-empty string")
        if not isinstance(self.password, str):
            raise InputError("db_passwd", "must be a string")
        check_port_field("db_port", self.port)

    def __repr__(self) -> str:
        return (
            f"DbParams(type={self.type!r}, name={self.name!r}, user={self.user!r}, password='********', "
            f"host={self.host!r}, port={self.port!r})"
        )

    __str__ = __repr__

    def env(self) -> dict[str, str]:
        """``db_*`` → the urlencoded value, in Aegir's order."""
        values = (self.type, self.name, self.user, self.password, self.host, self.port)
        return {key: urlencode(value) for key, value in zip(DB_KEYS, values, strict=True)}


PLACEHOLDER_ENV: dict[str, str] = dict(
    zip(DB_KEYS, ("mysqli", "none", "none", "none", "localhost", "3306"), strict=True)
)
"""What the vhost says when a site has no database yet (as Aegir: one site without credentials must not stop
the web server from reloading for all the others)."""


@dataclass(frozen=True)
class SiteVhost:
    """Everything a site's vhost is rendered from. Construction validates (``InputError`` naming the field)."""

    uri: str
    docroot: str
    site_dir: str
    http_port: int
    aliases: tuple[str, ...] = ()
    redirection: str | None = None
    enabled: bool = True
    db: DbParams | None = None
    php_fpm_socket: str | None = None
    web_disable_url: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        check_host("uri", self.uri)
        set_(self, "docroot", check_abs_path("docroot", self.docroot))
        if (
            not isinstance(self.site_dir, str)
            or not _SITE_DIR_RE.match(self.site_dir)
            or self.site_dir
            in (
                "sites/.",
                "sites/..",
            )
        ):
            raise InputError("site_dir", f"must be a site directory like 'sites/example.com'; got {self.site_dir!r}")
        check_port_field("http_port", self.http_port)
        if isinstance(self.aliases, str):
            raise InputError("aliases", "must be a list of hostnames, not one string")
        aliases = tuple(dict.fromkeys(check_host("aliases", a) for a in self.aliases))
        set_(self, "aliases", tuple(a for a in aliases if a != self.uri))
        if self.redirection is not None:
            check_host("redirection", self.redirection)
        if not isinstance(self.enabled, bool):
            raise InputError("enabled", f"must be true or false; got {self.enabled!r}")
        if self.db is not None and not isinstance(self.db, DbParams):
            raise InputError("db", "must be DbParams or None")
        if self.php_fpm_socket is not None:
            check_php_fpm("php_fpm_socket", self.php_fpm_socket)
        if self.web_disable_url is not None:
            set_(self, "web_disable_url", check_url("web_disable_url", self.web_disable_url))

    @property
    def names(self) -> tuple[str, ...]:
        """Every host name of the site: the uri first, then the aliases."""
        return (self.uri, *self.aliases)

    def served_names(self) -> tuple[str, ...]:
        """The names the site answers on (the others redirect to ``redirection``)."""
        if self.redirection is None:
            return self.names
        if self.redirection in self.names:
            return (self.redirection,)
        return (self.uri,)

    def redirected_names(self) -> tuple[str, ...]:
        served = self.served_names()
        return tuple(n for n in self.names if n not in served)


# -- template variables ---------------------------------------------------------------------------------------
def host_regex(name: str) -> str:
    """A validated host name as a regex (dots escaped)."""
    return check_host("host", name).replace(".", r"\.")


def fastcgi_pass(socket: str | None) -> str:
    """nginx's ``fastcgi_pass`` target for a php-fpm socket path or ``host:port``."""
    target = socket or DEFAULT_NGINX_FASTCGI
    return f"unix:{target}" if target.startswith("/") else target


def apache_php_handler(socket: str | None) -> str | None:
    """mod_proxy_fcgi's ``SetHandler`` for php-fpm, or None (PHP left to the OS configuration)."""
    if socket is None:
        return None
    if socket.startswith("/"):
        return f"proxy:unix:{socket}|fcgi://localhost"
    return f"proxy:fcgi://{socket}"


def vhost_variables(site: SiteVhost) -> dict[str, Any]:
    """The variables of ``<app>/vhost.conf.j2`` and ``<app>/vhost_disabled.conf.j2``."""
    served = site.served_names()
    return {
        "uri": site.uri,
        "docroot": site.docroot,
        "site_dir": site.site_dir,
        "port": site.http_port,
        "names": list(site.names),
        "aliases": list(site.aliases),
        "served": list(served),
        "served_regex": "|".join(host_regex(n) for n in served),
        "redirected": list(site.redirected_names()),
        "redirection": site.redirection,
        "db_env": site.db.env() if site.db is not None else dict(PLACEHOLDER_ENV),
        "fastcgi_pass": fastcgi_pass(site.php_fpm_socket),
        "php_handler": apache_php_handler(site.php_fpm_socket),
        "web_disable_url": site.web_disable_url,
        "disabled_message": DISABLED_MESSAGE,
    }


def vhost_template(app: str, site: SiteVhost) -> str:
    return f"{app}/vhost.conf.j2" if site.enabled else f"{app}/vhost_disabled.conf.j2"


__all__ = [
    "DB_KEYS",
    "DEFAULT_NGINX_FASTCGI",
    "DISABLED_MESSAGE",
    "PLACEHOLDER_ENV",
    "PLATFORM_CONF_MODE",
    "VHOST_MODE",
    "DbParams",
    "SiteVhost",
    "apache_php_handler",
    "check_platform_name",
    "fastcgi_pass",
    "host_regex",
    "urlencode",
    "vhost_template",
    "vhost_variables",
]
