"""One order across every process's log: `python -m cluster logs --order <id>`.

Reads every `*.log` of the cluster's log dir (ClusterConfig.log_dir; one file per process).
The apps write one JSON object per line (actors/toolkit/logs.py); a line is the order's when
its order_id, correlation_id or actor_id is the order id (an order's events carry
correlation_id = order id, and routed calls keep it), or when its trace_id is one of the
trace ids those lines carry (a router warning or an error inside the same trace). Text
lines (daprd, Redis, Zipkin) count when they name the order id or one of those trace ids.
Lines are merged by timestamp and printed as `time  process  level  message  [context]`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

ID_FIELDS: Final = ("order_id", "correlation_id", "actor_id")
_DAPRD_TIME: Final = re.compile(r'time="([^"]+)"')
_DAPRD_LEVEL: Final = re.compile(r"level=(\w+)")
_DAPRD_MSG: Final = re.compile(r'msg="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, order=True)
class Line:
    at: dt.datetime
    process: str = field(compare=False)
    level: str = field(compare=False)
    message: str = field(compare=False)
    fields: dict[str, Any] = field(compare=False, default_factory=dict)

    def render(self) -> str:
        context = " ".join(
            f"{key}={self.fields[key]}"
            for key in ("actor_type", "actor_id", "trace_id")
            if self.fields.get(key)
        )
        stamp = self.at.strftime("%H:%M:%S.%f")[:-3]
        text = f"{stamp}  {self.process:<16} {self.level:<7} {self.message}"
        return f"{text}  [{context}]" if context else text


def _records(path: Path) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """(raw line, its JSON object or None) for every line of one log file."""
    with path.open(encoding="utf-8", errors="replace") as lines:
        for raw in lines:
            record = None
            if raw.startswith("{"):
                try:
                    parsed = json.loads(raw)
                except ValueError:
                    parsed = None
                record = parsed if isinstance(parsed, dict) else None
            yield raw.rstrip("\n"), record


def _about(record: dict[str, Any], order_id: str) -> bool:
    return any(record.get(key) == order_id for key in ID_FIELDS)


def trace_ids(files: Iterable[Path], order_id: str) -> set[str]:
    """The trace ids of every JSON line that names the order."""
    found: set[str] = set()
    for path in files:
        for _, record in _records(path):
            if record is not None and record.get("trace_id") and _about(record, order_id):
                found.add(str(record["trace_id"]))
    return found


def _parsed_time(value: str) -> dt.datetime | None:
    try:
        at = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def _json_line(process: str, record: dict[str, Any]) -> Line | None:
    at = _parsed_time(str(record.get("ts", "")))
    if at is None:
        return None
    message = str(record.get("msg", ""))
    if record.get("exc"):
        message += "\n" + str(record["exc"])
    return Line(at, process, str(record.get("level", "")), message, record)


def _text_line(process: str, raw: str) -> Line | None:
    """A daprd (logfmt) line; other text lines have no time we can read and are skipped."""
    stamp = _DAPRD_TIME.search(raw)
    at = _parsed_time(stamp[1]) if stamp else None
    if at is None:
        return None
    level = _DAPRD_LEVEL.search(raw)
    message = _DAPRD_MSG.search(raw)
    return Line(
        at.astimezone(dt.UTC),
        process,
        level[1].upper() if level else "",
        message[1] if message else raw,
    )


def order_lines(log_dir: Path, order_id: str) -> list[Line]:
    """Every line about `order_id` in the cluster's logs, oldest first."""
    files = sorted(log_dir.glob("*.log"))
    traces = trace_ids(files, order_id)
    lines: list[Line] = []
    for path in files:
        process = path.stem
        for raw, record in _records(path):
            if record is not None:
                if _about(record, order_id) or record.get("trace_id") in traces:
                    line = _json_line(process, record)
                    if line is not None:
                        lines.append(line)
            elif order_id in raw or any(t in raw for t in traces):
                line = _text_line(process, raw)
                if line is not None:
                    lines.append(line)
    return sorted(lines)


def main(log_dir: Path, order_id: str, *, as_json: bool = False) -> int:
    """Print the order's lines; 1 when there are none."""
    if not log_dir.is_dir():
        print(f"no log directory {log_dir} (is ORDERFLOW_STATE_DIR the cluster's?)")
        return 1
    lines = order_lines(log_dir, order_id)
    for line in lines:
        print(json.dumps(line.fields) if as_json and line.fields else line.render())
    if not lines:
        print(f"nothing about {order_id} in {log_dir}")
        return 1
    processes = sorted({line.process for line in lines})
    print(f"-- {len(lines)} lines about {order_id} from {', '.join(processes)}")
    return 0
