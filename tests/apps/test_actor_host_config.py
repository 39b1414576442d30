"""The actor runtime configuration daprd reads from the actor host (GET /dapr/config)."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import yaml
from dapr.actor import ActorRuntime
from dapr.serializers import DefaultJSONSerializer

from actors.toolkit.streams import STREAM_MAX_LEN
from apps.actor_host.main import Settings, _configure_runtime
from cluster.config import ROOT


def _served(settings: Settings) -> dict[str, object]:
    _configure_runtime(settings)
    served: dict[str, object] = json.loads(
        DefaultJSONSerializer().serialize(ActorRuntime.get_actor_config())
    )  # what the SDK's GET /dapr/config answers
    return served


def test_orders_are_dropped_after_a_minute_idle_the_other_types_after_fifteen() -> None:
    served = _served(Settings())

    assert served["actorIdleTimeout"] == "0h15m0s0ms0\u03bcs"
    assert served["entitiesConfig"] == [
        {
            "entities": ["OrderActor"],
            "actorIdleTimeout": "0h1m0s0ms0\u03bcs",
            "drainOngoingCallTimeout": "0h0m2s0ms0\u03bcs",  # as every type: rebalance timing
            "drainRebalancedActors": True,
        }
    ]


def test_the_order_idle_timeout_is_a_setting() -> None:
    served = _served(Settings(order_idle_timeout=dt.timedelta(seconds=90)))

    assert served["entitiesConfig"][0]["actorIdleTimeout"] == "0h1m30s0ms0\u03bcs"  # type: ignore[index]


def test_commits_publish_in_their_append_unless_told_to_use_the_sidecar(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ORDERFLOW_PUBLISH", raising=False)
    assert Settings.from_env().publish == "append"
    monkeypatch.setenv("ORDERFLOW_PUBLISH", "sidecar")
    assert Settings.from_env().publish == "sidecar"
    monkeypatch.setenv("ORDERFLOW_PUBLISH", "kafka")
    with pytest.raises(ValueError, match="ORDERFLOW_PUBLISH='kafka'"):
        Settings.from_env()


def test_the_sidecar_self_heal_is_off_unless_given_a_bound_of_10_to_25_s(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ORDERFLOW_SIDECAR_SELF_HEAL_S", raising=False)
    assert Settings.from_env().sidecar_self_heal == 0
    for value, bound in (("0", 0.0), ("10", 10.0), ("25", 25.0)):
        monkeypatch.setenv("ORDERFLOW_SIDECAR_SELF_HEAL_S", value)
        assert Settings.from_env().sidecar_self_heal == bound
    for value in ("5", "26", "-1"):  # inside a rebalance; past the patient call's wait
        monkeypatch.setenv("ORDERFLOW_SIDECAR_SELF_HEAL_S", value)
        with pytest.raises(ValueError, match="expected 0 \\(off\\) or 10-25"):
            Settings.from_env()


def test_the_streams_are_bounded_as_the_pubsub_component_bounds_them() -> None:
    component = yaml.safe_load((ROOT / "components" / "pubsub.yaml").read_text())
    metadata = {m["name"]: m.get("value") for m in component["spec"]["metadata"]}
    assert int(metadata["maxLenApprox"]) == STREAM_MAX_LEN
    assert "streamTTL" not in metadata  # the component would then trim by age too (MINID)
