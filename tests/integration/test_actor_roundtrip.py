"""An actor call through daprd's HTTP actor API and through the SDK's ActorProxy."""

from __future__ import annotations

import json

import httpx
import pytest
from dapr.actor import ActorId, ActorProxy, ActorProxyFactory
from dapr.conf import settings

from actors.beacon.interface import BeaconActorInterface
from cluster.local import LocalCluster
from tests.integration.support import call, touch


def test_actor_method_round_trip_through_the_sidecar_http_api(
    gateway_sidecar: httpx.Client, uid: str
) -> None:
    first = touch(gateway_sidecar, uid, note="hello")
    second = touch(gateway_sidecar, uid)
    got = call(gateway_sidecar, "BeaconActor", uid, "Get")

    assert first["touches"] == 1
    assert second["touches"] == 2
    assert got["result"]["touches"] == 2
    assert got["result"]["note"] == "hello"
    assert got["result"]["replica"] in {"actor-host-1", "actor-host-2"}


def test_invalid_payload_gets_a_typed_error_and_changes_nothing(
    gateway_sidecar: httpx.Client, uid: str
) -> None:
    touch(gateway_sidecar, uid)
    bad = call(gateway_sidecar, "BeaconActor", uid, "Touch", {"hold_ms": -5, "extra": 1})

    assert bad["ok"] is False
    assert bad["error"]["code"] == "request.invalid"
    assert call(gateway_sidecar, "BeaconActor", uid, "Get")["result"]["touches"] == 1


async def test_actor_method_round_trip_through_the_sdk_actor_proxy(
    cluster: LocalCluster, uid: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(settings, "DAPR_HTTP_PORT", cluster.app("gateway").http_port)
    monkeypatch.setattr(settings, "DAPR_RUNTIME_HOST", "127.0.0.1")
    monkeypatch.setattr(settings, "DAPR_API_TOKEN", cluster.tokens.dapr)  # the SDK sends it
    proxy = ActorProxy.create(
        "BeaconActor", ActorId(uid), BeaconActorInterface, ActorProxyFactory()
    )

    raw = await proxy.invoke_method(
        "Touch", json.dumps({"note": "via proxy", "request_id": uid}).encode()
    )
    got = json.loads(await proxy.invoke_method("Get"))

    assert json.loads(raw)["result"]["touches"] == 1
    assert got["result"]["note"] == "via proxy"


def test_a_retried_request_id_is_applied_once(gateway_sidecar: httpx.Client, uid: str) -> None:
    body = {"request_id": f"req-{uid}"}
    call(gateway_sidecar, "BeaconActor", uid, "Touch", body)
    again = call(gateway_sidecar, "BeaconActor", uid, "Touch", body)

    assert again["result"]["touches"] == 1
