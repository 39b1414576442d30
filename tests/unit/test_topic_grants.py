"""The pub/sub component's topic scopes grant what the apps use, and nothing else.

`actors/catalog.py` says which app id may publish to and subscribe to each topic through
its daprd (PUBLISHES, SUBSCRIBES); components/pubsub.yaml must say the same (the chart's
copy is held to it by tests/cluster/test_helm_chart.py), and every subscription an app
asks daprd for, and every topic it publishes to through daprd, must be granted. The real
daprd's refusals: tests/integration/test_topic_scopes.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import yaml

from actors import catalog
from actors.reactions import build_router
from actors.toolkit.streamfeed import FEED_DAPR
from apps.console import api as console_api
from apps.projector.events import FEED_STREAMS
from apps.shipping import events as shipping_events
from cluster.config import ROOT


def _component() -> dict[str, Any]:
    component: dict[str, Any] = yaml.safe_load((ROOT / "components" / "pubsub.yaml").read_text())
    return component


def _metadata() -> dict[str, str]:
    return {
        entry["name"]: entry["value"]
        for entry in _component()["spec"]["metadata"]
        if "value" in entry
    }


def _grants(value: str) -> dict[str, set[str]]:
    """`app=t1,t2;app2=` as {app: {t1, t2}, app2: set()}."""
    grants = {}
    for part in value.split(";"):
        app, _, topics = part.partition("=")
        grants[app] = {t for t in topics.split(",") if t}
    return grants


def test_every_topic_is_allowed_and_protected_and_no_other() -> None:
    meta = _metadata()
    assert meta["allowedTopics"].split(",") == list(catalog.TOPICS)
    assert meta["protectedTopics"].split(",") == list(catalog.TOPICS)
    assert len(set(catalog.TOPICS)) == len(catalog.TOPICS)


def test_the_component_grants_what_the_catalog_grants() -> None:
    meta = _metadata()
    assert meta["publishingScopes"] == catalog.topic_scopes(catalog.PUBLISHES)
    assert meta["subscriptionScopes"] == catalog.topic_scopes(catalog.SUBSCRIBES)
    publishing, subscribing = _grants(meta["publishingScopes"]), _grants(meta["subscriptionScopes"])
    # every app id that may load the component has both grants spelled out (an app id
    # missing from a list could use no protected topic, silently)
    apps = set(_component()["scopes"])
    assert set(publishing) == set(subscribing) == apps
    for grants in (publishing, subscribing):
        for topics in grants.values():
            assert topics <= set(catalog.TOPICS)


def test_topic_scopes_renders_an_empty_grant_as_no_topic() -> None:
    assert catalog.topic_scopes({"a": ("t1", "t2"), "b": ()}) == "a=t1,t2;b="


def test_the_actor_hosts_subscribe_to_what_the_router_routes_and_nothing_else() -> None:
    routed = build_router().topics
    assert set(routed) == set(catalog.ROUTED_TOPICS)
    assert set(routed) <= set(catalog.SUBSCRIBES[catalog.ACTOR_HOST_APP])


def test_the_projector_shipping_and_the_console_subscribe_only_where_granted() -> None:
    assert set(FEED_STREAMS) == set(catalog.SUBSCRIBES[catalog.PROJECTOR_APP])
    shipping = asyncio.run(shipping_events.subscriptions(FEED_DAPR))
    assert {s["topic"] for s in shipping} == set(catalog.SUBSCRIBES[catalog.SHIPPING_APP])
    console = asyncio.run(console_api.subscribe())
    assert {s["topic"] for s in console} == set(catalog.SUBSCRIBES[catalog.CONSOLE_APP])
    assert catalog.SUBSCRIBES[catalog.GATEWAY_APP] == ()


def test_each_publisher_is_granted_the_topics_it_publishes_to() -> None:
    # ORDERFLOW_PUBLISH=sidecar: each actor type's events on its topic; the router's letters
    actor_topics = set(catalog.TOPIC_OF.values()) | {catalog.DEAD_LETTERS}
    assert set(catalog.PUBLISHES[catalog.ACTOR_HOST_APP]) == actor_topics
    # a dead letter comes off a routed topic, and the console redrives it there
    assert set(catalog.PUBLISHES[catalog.CONSOLE_APP]) == set(build_router().topics)
    assert catalog.PUBLISHES[catalog.SHIPPING_APP] == (catalog.SHIPMENTS,)
    assert catalog.PUBLISHES[catalog.PROJECTOR_APP] == (catalog.PROJECTOR_REDELIVERY,)
    # no app may publish to the dead letters but the router, nor redeliver the projector's
    for app, topics in catalog.PUBLISHES.items():
        if app != catalog.ACTOR_HOST_APP:
            assert catalog.DEAD_LETTERS not in topics
        if app != catalog.PROJECTOR_APP:
            assert catalog.PROJECTOR_REDELIVERY not in topics
