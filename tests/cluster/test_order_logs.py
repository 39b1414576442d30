"""`python -m cluster logs --order`: one order's lines from every log file, merged by time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cluster import logs as order_logs

ORDER = "ord-0123456789abcdef01234567"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _json(ts: str, msg: str, **fields: Any) -> str:
    return json.dumps({"ts": ts, "level": "INFO", "app": "x", "logger": "t", "msg": msg, **fields})


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    files = {
        "gateway.log": [
            _json("2026-05-01T12:00:00.100000Z", "order accepted", order_id=ORDER, trace_id=TRACE),
            _json("2026-05-01T12:00:00.050000Z", "other order", order_id="ord-other"),
        ],
        "actor-host-1.log": [
            _json(
                "2026-05-01T12:00:00.200000Z",
                "order placed",
                actor_type="OrderActor",
                actor_id=ORDER,
                trace_id=TRACE,
            ),
            _json("2026-05-01T12:00:00.300000Z", "RETRY inventory/e1", trace_id=TRACE),
            "not json at all",
            "{broken json",
        ],
        "actor-host-2.log": [
            _json("2026-05-01T12:00:00.250000Z", "reserved", correlation_id=ORDER),
        ],
        "shipping.log": [
            _json("2026-05-01T12:00:00.400000Z", "answered", order_id=ORDER, trace_id=TRACE),
        ],
        "actor-host-1-daprd.log": [
            f'time="2026-05-01T12:00:00.350000Z" level=warning msg="actor OrderActor||{ORDER} '
            'call failed" app_id=actor-host',
            'time="2026-05-01T12:00:00.360000Z" level=info msg="unrelated"',
        ],
        "redis.log": [f"1:M 01 May 2026 12:00:00.000 * mentions {ORDER} without a time we read"],
    }
    for name, lines in files.items():
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    return tmp_path


def test_the_orders_lines_come_from_every_process_oldest_first(log_dir: Path) -> None:
    lines = order_logs.order_lines(log_dir, ORDER)

    assert [(line.process, line.message) for line in lines] == [
        ("gateway", "order accepted"),
        ("actor-host-1", "order placed"),
        ("actor-host-2", "reserved"),
        ("actor-host-1", "RETRY inventory/e1"),  # no order id, but the order's trace
        ("actor-host-1-daprd", f"actor OrderActor||{ORDER} call failed"),
        ("shipping", "answered"),
    ]
    assert lines[4].level == "WARNING"


def test_a_rendered_line_says_time_process_level_message_and_the_actor(log_dir: Path) -> None:
    placed = order_logs.order_lines(log_dir, ORDER)[1]

    assert placed.render() == (
        f"12:00:00.200  actor-host-1     INFO    order placed  "
        f"[actor_type=OrderActor actor_id={ORDER} trace_id={TRACE}]"
    )


def test_the_command_prints_the_lines_and_exits_1_when_nothing_names_the_order(
    log_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert order_logs.main(log_dir, ORDER) == 0
    out = capsys.readouterr().out
    assert "order accepted" in out
    assert out.splitlines()[-1].startswith(f"-- 6 lines about {ORDER} from actor-host-1, ")

    assert order_logs.main(log_dir, "ord-unknown") == 1
    assert order_logs.main(log_dir / "missing", ORDER) == 1
