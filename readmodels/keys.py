"""Where the read models live in Redis: a base prefix, generations, and the keys of each.

    <base>active                       the generation queries read (absent: "g0")
    <base>rebuilding                   the generation a rebuild is filling (with a TTL)
    <base>rejected                     deliveries that can never apply (list, the last 1000)
    <base><gen>:order:<order id>       order summary (hash)
    <base><gen>:stock:<sku>            stock levels (hash)
    <base><gen>:wallet:<customer id>   balances (hash)
    <base><gen>:orders:all | orders:customer:<c> | orders:status:<s> |
        orders:customer:<c>:status:<s> sorted sets of order ids, scored by placed time (ms)
    <base><gen>:stock:low              sorted set of SKUs, scored by available
    <base><gen>:counts:<YYYY-MM-DDTHH:MM>  per-minute counters (hash, with a TTL)
    <base><gen>:meta                   the last event applied live (freshness)

Ids cannot contain ":" (actors.toolkit.ids), so no two keys collide. Pure: no I/O (the
base prefix comes from ORDERFLOW_READ_MODEL_PREFIX, read by `prefix_from_env`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

DEFAULT_BASE: Final = "rm:"
PREFIX_ENV: Final = "ORDERFLOW_READ_MODEL_PREFIX"
DEFAULT_GENERATION: Final = "g0"
GENERATION_PATTERN: Final = "g*"  # every generation name starts with "g"


def prefix_from_env(env: Mapping[str, str] | None = None) -> str:
    """The base prefix of every read-model key: ORDERFLOW_READ_MODEL_PREFIX, else "rm:"."""
    env = os.environ if env is None else env
    return env.get(PREFIX_ENV) or DEFAULT_BASE


@dataclass(frozen=True)
class Generation:
    """The keys of one complete set of read models."""

    prefix: str  # "<base><gen>:"

    def key(self, suffix: str) -> str:
        return self.prefix + suffix

    @property
    def meta(self) -> str:
        return self.prefix + "meta"

    def counters(self, minute: str) -> str:
        return f"{self.prefix}counts:{minute}"


@dataclass(frozen=True)
class Layout:
    """The base prefix and its pointer keys; `generation(name)` gives a generation's keys."""

    base: str = DEFAULT_BASE

    @property
    def active_key(self) -> str:
        return self.base + "active"

    @property
    def rebuilding_key(self) -> str:
        return self.base + "rebuilding"

    @property
    def rejected_key(self) -> str:
        return self.base + "rejected"

    def generation(self, name: str | None) -> Generation:
        return Generation(f"{self.base}{name or DEFAULT_GENERATION}:")

    def generation_match(self, name: str) -> str:
        """A SCAN pattern for every key of generation `name`."""
        return f"{_glob_escape(self.base)}{_glob_escape(name)}:*"

    @property
    def all_generations_match(self) -> str:
        return f"{_glob_escape(self.base)}{GENERATION_PATTERN}:*"

    def generation_of(self, key: str) -> str | None:
        """The generation a data key belongs to (None for the pointer keys)."""
        if not key.startswith(self.base):
            return None
        name, sep, _ = key[len(self.base) :].partition(":")
        return name if sep and name.startswith("g") else None


def _glob_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)
