"""PHP serialize()/unserialize(): known PHP outputs, PHP itself (when /usr/bin/php is there) and round trips."""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess

import pytest

from aegir.drupal import phpserial
from aegir.drupal.phpserial import dumps, loads

PHP = shutil.which("php")
needs_php = pytest.mark.skipif(PHP is None, reason="php CLI not installed")

KNOWN = [
    (None, "N;"),
    (True, "b:1;"),
    (False, "b:0;"),
    (0, "i:0;"),
    (-42, "i:-42;"),
    (2**63 - 1, "i:9223372036854775807;"),
    (1.0, "d:1;"),
    (0.1, "d:0.1;"),
    (-2.5, "d:-2.5;"),
    (1e25, "d:1.0E+25;"),
    (1.5e-7, "d:1.5E-7;"),
    (1e16, "d:10000000000000000;"),
    (1e17, "d:1.0E+17;"),
    (0.0001, "d:0.0001;"),
    (1e-5, "d:1.0E-5;"),
    (1.2345678901234568e20, "d:1.2345678901234568E+20;"),
    (-0.0, "d:-0;"),
    (float("inf"), "d:INF;"),
    (float("-inf"), "d:-INF;"),
    ("", 's:0:"";'),
    ("é", 's:2:"é";'),
    ('a "quoted"; s:1:"x";', 's:20:"a "quoted"; s:1:"x";";'),
    ("日本", 's:6:"日本";'),
    ([], "a:0:{}"),
    ([1, "a"], 'a:2:{i:0;i:1;i:1;s:1:"a";}'),
    ({"module": {"node": 0, "system": 1}}, 'a:1:{s:6:"module";a:2:{s:4:"node";i:0;s:6:"system";i:1;}}'),
    ({5: "x", "a": None}, 'a:2:{i:5;s:1:"x";s:1:"a";N;}'),
]


@pytest.mark.parametrize("value,php", KNOWN, ids=[k[1][:30] for k in KNOWN])
def test_known_php_outputs(value, php):
    assert dumps(value) == php
    back = loads(php)
    assert back == value or (isinstance(value, float) and math.copysign(1, back) == math.copysign(1, value))
    assert loads(php.encode()) == back


def test_nan():
    assert dumps(float("nan")) == "d:NAN;"
    assert math.isnan(loads("d:NAN;"))


def test_numeric_string_keys_become_int_keys_as_in_php():
    assert dumps({"5": 1, "05": 2, "-3": 3}) == 'a:3:{i:5;i:1;s:2:"05";i:2;i:-3;i:3;}'


def test_arrays_become_lists_only_for_keys_0_to_n_minus_1():
    assert loads('a:2:{i:0;s:1:"a";i:1;s:1:"b";}') == ["a", "b"]
    assert loads('a:2:{i:1;s:1:"a";i:0;s:1:"b";}') == {1: "a", 0: "b"}
    assert loads("a:1:{i:1;N;}") == {1: None}


def test_objects():
    data = 'O:1:"A":3:{s:1:"x";i:1;s:4:"\0*\0y";i:2;s:4:"\0A\0z";i:3;}'
    assert loads(data) == {"__class__": "A", "x": 1, "y": 2, "z": 3}
    assert loads('O:8:"stdClass":0:{}') == {"__class__": "stdClass"}
    assert loads('C:11:"ArrayObject":4:{abcd}') == {"__class__": "ArrayObject", "__serialized__": "abcd"}


def test_references():
    assert loads("a:2:{i:0;a:1:{i:0;i:1;}i:1;R:2;}") == [[1], [1]]
    assert loads('a:2:{i:0;O:8:"stdClass":0:{}i:1;r:2;}') == [{"__class__": "stdClass"}] * 2
    assert loads("a:2:{i:0;i:7;i:1;R:2;}") == [7, 7]
    with pytest.raises(ValueError):
        loads("a:1:{i:0;R:1;}")  # recursive
    with pytest.raises(ValueError):
        loads("a:1:{i:0;R:9;}")


def test_binary_strings_round_trip():
    raw = b's:3:"\xff\x00a";'
    value = loads(raw)
    assert dumps(value).encode("utf-8", errors="surrogateescape") == raw


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "N",
        "X;",
        "i:;",
        "i:1",
        "i:1.5;",
        "b:2;",
        "d:abc;",
        's:5:"abc";',
        's:2:"abc";',
        's:-1:"";',
        's:3:"é";',  # length counts bytes: é is 2
        "a:2:{i:0;i:1;}",
        "a:1:{i:0;i:1;",
        "a:1:{d:1.5;i:1;}",
        "a:1:{N;i:1;}",
        "i:1;i:2;",
        "N;x",
        'O:1:"A":1:{s:1:"x";}',
        'E:7:"Foo:Bar";',
        "a:1:{i:0;" * 600 + "N;" + "}" * 600,
    ],
)
def test_malformed_input_is_refused(bad):
    with pytest.raises(ValueError):
        loads(bad)


def test_dumps_refuses_what_php_cannot_hold():
    with pytest.raises(TypeError):
        dumps(object())
    with pytest.raises(TypeError):
        dumps({1.5: "x"})
    with pytest.raises(TypeError):
        dumps({True: "x"})


def _random_value(rng: random.Random, depth: int = 0):
    kinds = ["none", "bool", "int", "float", "str"] + (["list", "dict"] if depth < 4 else [])
    kind = rng.choice(kinds)
    if kind == "none":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.randint(-(2**63), 2**63 - 1) if rng.random() < 0.3 else rng.randint(-1000, 1000)
    if kind == "float":
        return rng.choice(
            [rng.uniform(-1e6, 1e6), rng.random() * 10 ** rng.randint(-30, 30), float(rng.randint(-99, 99))]
        )
    if kind == "str":
        alphabet = "abc \"';:{}\\\n\0éü日本😀"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(1, 4))]
    keys = {rng.choice(["k", "key", "é", "a b"]) + str(rng.randint(0, 9)) for _ in range(rng.randint(1, 4))}
    return {k: _random_value(rng, depth + 1) for k in keys}


def test_round_trips():
    rng = random.Random(42)
    for _ in range(500):
        value = _random_value(rng)
        assert loads(dumps(value)) == value


@needs_php
def test_agrees_with_php():
    rng = random.Random(3)
    values = [_random_value(rng) for _ in range(60)]
    script = (
        "$vals = json_decode(stream_get_contents(STDIN), true, 512, JSON_BIGINT_AS_STRING);"
        ' foreach ($vals as $v) { echo serialize($v), "\\n--END--\\n"; }'
    )
    out = subprocess.run(
        [PHP, "-d", "serialize_precision=-1", "-r", script],
        input=json.dumps(values).encode(),
        capture_output=True,
        check=True,
    ).stdout.decode()
    serialized = out.split("\n--END--\n")[:-1]
    assert len(serialized) == len(values)
    compared = 0
    for value, php in zip(values, serialized, strict=True):
        if _has_float_ints(value):
            continue  # json_decode turns 3.0 into int 3
        assert dumps(value) == php
        assert loads(php) == value
        compared += 1
    assert compared > 30


@needs_php
def test_reads_what_php_writes_for_objects_and_references():
    script = (
        "class A { public $x = 1; protected $y = [1, 2]; private $z = 'é'; }"
        "$o = new stdClass; $o->n = null; $a = [1]; $b = [&$a, &$a, 'o' => $o, 'p' => $o, 'a' => new A];"
        "echo serialize($b);"
    )
    out = subprocess.run([PHP, "-r", script], capture_output=True, check=True).stdout
    value = loads(out)
    assert value[0] == [1] and value[1] == [1]
    assert value["o"] == {"__class__": "stdClass", "n": None} and value["p"] == value["o"]
    assert value["a"] == {"__class__": "A", "x": 1, "y": [1, 2], "z": "é"}


def _has_float_ints(value) -> bool:
    if isinstance(value, float):
        return value.is_integer() or math.isinf(value)
    if isinstance(value, list):
        return any(_has_float_ints(v) for v in value)
    if isinstance(value, dict):
        return any(_has_float_ints(v) for v in value.values())
    return False


def test_module_exports():
    assert {"loads", "dumps"} <= set(dir(phpserial))
