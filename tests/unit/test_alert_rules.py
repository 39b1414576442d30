"""The alert rules (deploy/prometheus/alerts.yml) pass promtool, and a broken one fails it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
RULE_TESTS = RULES_DIR / "alerts_test.yml"
SEVERITIES = {"critical", "warning"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail(
            "promtool not found: run `make setup` (it installs Debian's prometheus package)"
        )
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=60, check=False)


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_the_alert_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ('up{job="daprd"} == 0', 'up{job="daprd" == 0'),  # a PromQL syntax error
        ("for: 30s", "for: thirty seconds"),  # not a duration
        ("{{ $labels.process }} is down", "{{ $labels.process is down"),  # a broken template
    ],
)
def test_a_broken_rule_fails_promtool_check(tmp_path: Path, good: str, bad: str) -> None:
    text = RULES.read_text()
    assert good in text
    broken = tmp_path / "alerts.yml"
    broken.write_text(text.replace(good, bad, 1))
    result = promtool("check", "rules", str(broken))
    assert result.returncode != 0, result.stdout


def test_the_alert_rules_fire_as_their_unit_tests_expect() -> None:
    """deploy/prometheus/alerts_test.yml: sidecar down, dead letters growing, stuck sagas."""
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails_the_rule_unit_tests(tmp_path: Path) -> None:
    shutil.copy(RULES, tmp_path / "alerts.yml")
    text = RULE_TESTS.read_text()
    (tmp_path / "alerts_test.yml").write_text(text.replace("severity: critical", "severity: low"))
    result = promtool("test", "rules", str(tmp_path / "alerts_test.yml"))
    assert result.returncode != 0, result.stdout


def test_every_rule_waits_has_a_severity_and_tells_the_operator_what_to_do() -> None:
    for rule in rules():
        name = rule["alert"]
        assert rule.get("for"), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["description"], name


def test_the_rules_cover_what_an_operator_must_act_on() -> None:
    exprs = " ".join(str(rule["expr"]) for rule in rules())
    for metric in (
        'up{job="daprd"}',
        "orderflow_orders_stuck",
        "orderflow_dead_letters_total",
        "orderflow_projection_lag_seconds_bucket",
        "orderflow_outbox_backlog",
    ):
        assert metric in exprs
