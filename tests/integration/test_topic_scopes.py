"""The pub/sub component's topic scopes, enforced by the real daprd of every app.

Each app's daprd refuses a publish to a topic the component does not grant its app id
(403 ERR_PUBSUB_FORBIDDEN, nothing written to the stream) and to any topic not in the
component's list; what it grants is published by the rest of the suite (the partner's
shipments through shipping's daprd, other services' restocks and deposits through the
gateway's, actor-host-2's commits with ORDERFLOW_PUBLISH=sidecar, the router's dead
letters, the console's redrives). Every subscription a daprd of the session cluster asks
for is granted: none of their logs says one is not allowed (actor-host-2 subscribes to
every routed topic with ORDERFLOW_ROUTER_FEED=dapr, the console to the dead letters).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import httpx
import pytest
import redis

from actors import catalog
from cluster.local import LocalCluster

pytestmark = pytest.mark.integration

# each app id, and the process whose daprd it is here
PROCESS_OF = {
    catalog.ACTOR_HOST_APP: "actor-host-1",
    catalog.GATEWAY_APP: "gateway",
    catalog.PROJECTOR_APP: "projector",
    catalog.SHIPPING_APP: "shipping",
    catalog.CONSOLE_APP: "console",
}
NOT_A_TOPIC = "orders-typo"
# what daprd 1.18 logs, again and again, for a subscription the scopes refuse
REFUSED_SUBSCRIPTION = re.compile(r"subscription to topic '[^']*' on pubsub '[^']*' is not allowed")


def _refused(app_id: str) -> list[str]:
    granted = set(catalog.PUBLISHES[app_id])
    return [t for t in (*catalog.TOPICS, NOT_A_TOPIC) if t not in granted]


@pytest.mark.parametrize("app_id", sorted(PROCESS_OF))
def test_a_publish_outside_its_grants_is_refused_and_writes_nothing(
    app_id: str,
    sidecar_of: Callable[[str], httpx.Client],
    redis_client: redis.Redis,
) -> None:
    dapr = sidecar_of(PROCESS_OF[app_id])
    refused = _refused(app_id)
    assert refused, "every app is refused some topic"
    lengths = {t: _length(redis_client, t) for t in refused}
    for topic in refused:
        resp = dapr.post(
            f"/v1.0/publish/{catalog.PUBSUB}/{topic}",
            json={"probe": uuid.uuid4().hex},
            params={"metadata.cloudevent.id": uuid.uuid4().hex},
        )
        assert resp.status_code == 403, (topic, resp.text)
        body = resp.json()
        assert body["errorCode"] == "ERR_PUBSUB_FORBIDDEN"
        assert f"topic {topic} is not allowed for app id {app_id}" in body["message"]
    # the refusals left no entry on any stream (a stream that does not exist stays so)
    assert {t: _length(redis_client, t) for t in refused} == lengths


def test_every_subscription_the_session_cluster_asks_for_is_granted(
    cluster: LocalCluster, sidecar_of: Callable[[str], httpx.Client]
) -> None:
    asked = {}
    for app_id, process in PROCESS_OF.items():
        meta = sidecar_of(process).get("/v1.0/metadata").json()
        asked[app_id] = {s["topic"] for s in meta.get("subscriptions") or ()}
        assert asked[app_id] <= set(catalog.SUBSCRIBES[app_id]), app_id
    # the subscriptions this cluster makes through daprd (the rest read the streams)
    assert asked[catalog.CONSOLE_APP] == {catalog.DEAD_LETTERS}
    routed = {
        s["topic"] for s in sidecar_of("actor-host-2").get("/v1.0/metadata").json()["subscriptions"]
    }
    assert routed == set(catalog.ROUTED_TOPICS)
    # daprd lists a subscription the scopes refuse too; its log says it was not made
    for name in cluster.processes:
        if name.endswith("-daprd"):
            log = (cluster.config.log_dir / f"{name}.log").read_text(errors="replace")
            assert REFUSED_SUBSCRIPTION.search(log) is None, name


def _length(client: redis.Redis, stream: str) -> int:
    return int(client.xlen(stream)) if client.exists(stream) else 0
