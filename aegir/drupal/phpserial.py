"""PHP ``serialize()`` / ``unserialize()`` for the values Drupal keeps in its database.

``loads`` reads ``N;`` ``b:`` ``i:`` ``d:`` ``s:`` (length in bytes), ``a:`` (a dict, or a list when the
keys are exactly 0..n-1 in order, which includes the empty array), ``O:`` objects (a dict of the properties
plus ``"__class__"``; protected/private name prefixes removed), ``C:`` custom-serialised objects (``{"__class__",
"__serialized__"}``) and the back-references ``r:``/``R:`` (to a value already read). Strings are decoded as
UTF-8; bytes that are not UTF-8 are kept as surrogate escapes, so ``dumps(loads(x)) == x`` for binary strings
too. Anything else, or trailing data, raises ``ValueError``.

``dumps`` writes None, bool, int, float, str, list/tuple and dict (int or str keys; decimal-integer strings
become integer keys, as PHP does) exactly as PHP 8's ``serialize()`` does.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

_MAX_DEPTH = 200  # Drupal data is shallow; deeper input would exhaust the Python stack
_INT_RE = re.compile(rb"-?\d+")
_FLOAT_RE = re.compile(rb"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|-?INF|NAN")
_UINT_RE = re.compile(rb"\d+")
_BOOL_RE = re.compile(rb"[01]")
_PHP_INT_KEY = re.compile(r"-?[1-9]\d*|0")
_PHP_INT_MIN, _PHP_INT_MAX = -(2**63), 2**63 - 1


class _Placeholder:
    """A slot for a value still being read (a reference to it would be a recursive structure)."""


_PENDING = _Placeholder()


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.slots: list[Any] = []  # PHP numbers every value except R: and array keys, from 1

    def fail(self, what: str) -> ValueError:
        return ValueError(f"invalid PHP serialized data at byte {self.pos}: {what}")

    def expect(self, token: bytes) -> None:
        if not self.data.startswith(token, self.pos):
            raise self.fail(f"expected {token.decode()!r}")
        self.pos += len(token)

    def until(self, delim: bytes, pattern: re.Pattern[bytes], what: str) -> bytes:
        end = self.data.find(delim, self.pos)
        if end < 0:
            raise self.fail(f"unterminated {what}")
        raw = self.data[self.pos : end]
        if not pattern.fullmatch(raw):
            raise self.fail(f"bad {what} {raw[:40]!r}")
        self.pos = end + len(delim)
        return raw

    def length(self) -> int:
        return int(self.until(b":", _UINT_RE, "length"))

    def quoted(self, n: int) -> bytes:
        self.expect(b'"')
        raw = self.data[self.pos : self.pos + n]
        if len(raw) != n:
            raise self.fail("string shorter than its length")
        self.pos += n
        self.expect(b'"')
        return raw

    def text(self, raw: bytes) -> str:
        return raw.decode("utf-8", errors="surrogateescape")

    def value(self, depth: int = 0, *, key: bool = False) -> Any:
        if depth > _MAX_DEPTH:
            raise self.fail("nested too deeply")
        if self.pos + 2 > len(self.data):
            raise self.fail("unexpected end of data")
        tag = self.data[self.pos : self.pos + 1]
        if key and tag not in (b"i", b"s"):
            raise self.fail(f"array key must be an int or a string, not {tag.decode(errors='replace')!r}")
        if tag == b"R":
            self.pos += 2  # "R:" does not take a slot of its own
            return self.reference()
        slot = -1
        if not key:
            slot = len(self.slots)
            self.slots.append(_PENDING)
        if tag == b"N":
            self.expect(b"N;")
            result: Any = None
        else:
            self.pos += 1
            self.expect(b":")
            result = self.typed(tag, depth)
        if slot >= 0:
            self.slots[slot] = result
        return result

    def reference(self) -> Any:
        n = int(self.until(b";", _UINT_RE, "reference"))
        if not 1 <= n <= len(self.slots):
            raise self.fail(f"reference to unknown value {n}")
        target = self.slots[n - 1]
        if target is _PENDING:
            raise self.fail("recursive references are not supported")
        return target

    def typed(self, tag: bytes, depth: int) -> Any:
        if tag == b"b":
            raw = self.until(b";", _BOOL_RE, "boolean")
            return raw == b"1"
        if tag == b"i":
            return int(self.until(b";", _INT_RE, "integer"))
        if tag == b"d":
            raw = self.until(b";", _FLOAT_RE, "float")
            return float(raw.replace(b"INF", b"inf").replace(b"NAN", b"nan"))
        if tag == b"s":
            n = self.length()
            raw = self.quoted(n)
            self.expect(b";")
            return self.text(raw)
        if tag == b"a":
            n = self.length()
            return self.items(n, depth, array=True)
        if tag == b"O":
            cls = self.text(self.quoted(self.length()))
            self.expect(b":")
            n = self.length()
            props = self.items(n, depth, array=False)
            return {"__class__": cls, **props}
        if tag == b"C":
            cls = self.text(self.quoted(self.length()))
            self.expect(b":")
            n = self.length()
            self.expect(b"{")
            raw = self.data[self.pos : self.pos + n]
            if len(raw) != n:
                raise self.fail("custom object data shorter than its length")
            self.pos += n
            self.expect(b"}")
            return {"__class__": cls, "__serialized__": self.text(raw)}
        if tag == b"r":
            return self.reference()
        raise self.fail(f"unsupported type {tag.decode(errors='replace')!r}")

    def items(self, n: int, depth: int, *, array: bool) -> Any:
        self.expect(b"{")
        out: dict[Any, Any] = {}
        for _ in range(n):
            k = self.value(depth + 1, key=True)
            if not array and isinstance(k, str) and k.startswith("\0"):
                k = k[k.index("\0", 1) + 1 :] if "\0" in k[1:] else k  # "\0*\0prop", "\0Class\0prop"
            out[k] = self.value(depth + 1)
        self.expect(b"}")
        if array and list(out) == list(range(len(out))):
            return list(out.values())
        return out


def loads(data: str | bytes | bytearray | memoryview) -> Any:
    """Read one PHP-serialized value; ``ValueError`` if ``data`` is not exactly that."""
    if isinstance(data, str):
        data = data.encode("utf-8", errors="surrogateescape")
    elif not isinstance(data, bytes):
        data = bytes(data)
    reader = _Reader(data)
    value = reader.value()
    if reader.pos != len(data):
        raise reader.fail("trailing data after the value")
    return value


def _float(f: float) -> str:
    """PHP 8's ``serialize_precision = -1`` form: shortest round-trip digits, exponent below 1e-4 and
    from 1e17 on (``1.0E+25``, ``1.5E-7``), integral values without ``.0``."""
    if math.isnan(f):
        return "NAN"
    if math.isinf(f):
        return "INF" if f > 0 else "-INF"
    sign = "-" if math.copysign(1.0, f) < 0 else ""
    if f == 0:
        return sign + "0"
    dec = Decimal(repr(abs(f)))
    digits = "".join(map(str, dec.as_tuple().digits)).strip("0") or "0"
    exp = dec.adjusted()
    if exp < -4 or exp >= 17:
        return f"{sign}{digits[0]}.{digits[1:] or '0'}E{'+' if exp >= 0 else '-'}{abs(exp)}"
    if exp >= 0:
        whole, frac = digits[: exp + 1].ljust(exp + 1, "0"), digits[exp + 1 :]
    else:
        whole, frac = "0", "0" * (-exp - 1) + digits
    return sign + whole + ("." + frac if frac else "")


def _str(s: str) -> str:
    n = len(s.encode("utf-8", errors="surrogateescape"))
    return f's:{n}:"{s}";'


def _key(k: Any) -> str:
    if isinstance(k, bool) or not isinstance(k, int | str):
        raise TypeError(f"PHP array keys must be int or str, not {type(k).__name__}")
    if isinstance(k, str) and _PHP_INT_KEY.fullmatch(k) and _PHP_INT_MIN <= int(k) <= _PHP_INT_MAX:
        k = int(k)
    return f"i:{k};" if isinstance(k, int) else _str(k)


def _dump(value: Any, out: list[str], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if value is None:
        out.append("N;")
    elif isinstance(value, bool):
        out.append(f"b:{int(value)};")
    elif isinstance(value, int):
        out.append(f"i:{value};")
    elif isinstance(value, float):
        out.append(f"d:{_float(value)};")
    elif isinstance(value, str):
        out.append(_str(value))
    elif isinstance(value, list | tuple):
        out.append(f"a:{len(value)}:{{")
        for i, item in enumerate(value):
            out.append(f"i:{i};")
            _dump(item, out, depth + 1)
        out.append("}")
    elif isinstance(value, dict):
        out.append(f"a:{len(value)}:{{")
        for k, item in value.items():
            out.append(_key(k))
            _dump(item, out, depth + 1)
        out.append("}")
    else:
        raise TypeError(f"cannot serialize {type(value).__name__} for PHP")


def dumps(value: Any) -> str:
    """``value`` as PHP's ``serialize()`` writes it (lengths count UTF-8 bytes)."""
    out: list[str] = []
    _dump(value, out, 0)
    return "".join(out)
