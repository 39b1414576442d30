"""Compact JSON for the actor turn's hot path: orjson's speed, the standard module's bytes.

`dumps(obj)` returns exactly `json.dumps(obj, separators=(",", ":")).encode()`, written
by orjson (several times faster: the answers, the CloudEvents and the inbox entries of
every command go through it). Where orjson would write other bytes, the standard module
writes the document:
    non-ASCII text and DEL    json escapes them (\\u00e9), orjson writes UTF-8
    any float                 the two format some differently (1e-05 is 0.00001 in orjson)
    ints beyond 64 bits, non-string keys, other types orjson refuses (TypeError)

`loads(raw)` returns what `json.loads(raw)` returns (and raises what it raises), for bytes
and str alike (the projector reads its rows' fields as text): orjson parses, unless the
document holds a run of 19 or more digits (orjson reads an integer beyond 64 bits as a
float: above 2**64 - 1, 20 digits, or below -2**63, 19 digits and a minus) or orjson
refuses it (NaN, Infinity, a lone surrogate, an encoding other than UTF-8...): then the
standard module decides.

One difference remains in `dumps`: a float NaN or infinity, which json writes as `NaN`
or `Infinity` (not JSON: daprd and every other reader would refuse it), orjson as `null`. No
Orderflow document holds one (money and quantities are ints, and pydantic's JSON mode
writes them as null too).
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import orjson

# a number with . or e after a colon, comma or bracket: where compact JSON puts a value,
# but also a time of day inside a text ("04:00:00.123456"), which `_has_float` skips
_NUMBER_AT: Final = re.compile(rb"[:,\[]-?[0-9]+[.eE]")
# every ASCII digit made "0", every other byte a space: a run of 19 digits is then found by
# a substring search (a regex over every position cost ~3 µs for a 300-byte actor answer)
_DIGITS_ONLY: Final = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN: Final = b"0" * 19
_LONG_DIGITS_TEXT: Final = re.compile(r"[0-9]{19}")


def dumps(obj: Any) -> bytes:
    """`json.dumps(obj, separators=(",", ":")).encode()`, byte for byte (see above)."""
    if isinstance(obj, float):
        return _standard(obj)
    try:
        out = orjson.dumps(obj)
    except TypeError:
        return _standard(obj)
    if out.isascii() and b"\x7f" not in out and not _has_float(out):
        return out
    return _standard(obj)


def _has_float(out: bytes) -> bool:
    """Whether compact JSON may hold a float: a number with . or e after a key's `":`, a
    comma or a bracket. Never missed; a text holding such a run (`"a\\":1.5"`) only sends
    the document to json. A colon not after a quote is inside a text (every event,
    snapshot and CloudEvent holds a time of day): skipped, not sent to json."""
    for match in _NUMBER_AT.finditer(out):
        at = match.start()
        if out[at] != 0x3A or out[at - 1] == 0x22:  # not ':', or '":'
            return True
    return False


def _standard(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def long_digits(raw: bytes | bytearray | str) -> bool:
    """Whether `raw` holds a run of 19 or more ASCII digits."""
    if not isinstance(raw, str):
        return _LONG_RUN in raw.translate(_DIGITS_ONLY)
    if raw.isascii():
        return _LONG_RUN in raw.encode("ascii").translate(_DIGITS_ONLY)
    return _LONG_DIGITS_TEXT.search(raw) is not None


def loads(raw: bytes | str) -> Any:
    """`json.loads(raw)`: the same value, the same errors (see above)."""
    if not long_digits(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # the standard module's answer: its value or its error
    return json.loads(raw)
