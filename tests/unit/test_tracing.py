"""Our spans: off by default, children of the incoming traceparent, sampled parent-based."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from actors.toolkit import tracing
from actors.toolkit.tracing import current_traceparent, incoming, span, trace_id_of
from tests.spans import NOT_SAMPLED, PARENT, SAMPLED, TRACE, Recorded, recording


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    with recording() as r:
        yield r


def test_off_a_span_is_one_shared_no_op_and_the_incoming_traceparent_is_forwarded() -> None:
    assert span("a") is span("b")
    with incoming(SAMPLED), span("decide"):
        assert current_traceparent() == SAMPLED


def test_no_zipkin_url_or_sampling_zero_leaves_tracing_off() -> None:
    assert tracing.configure(service="s", zipkin_url="", sampling=1.0).provider is None
    off = tracing.configure(service="s", zipkin_url="http://127.0.0.1:1/x", sampling=0)
    assert off.provider is None
    assert tracing.configure_from_env("s", {}).provider is None
    assert span("a") is span("b")


def test_a_span_is_a_child_of_the_incoming_traceparent_and_nested_spans_of_it(
    recorded: Recorded,
) -> None:
    with incoming(SAMPLED), span("OrderActor.Place", actor__id="ord-1"):
        outer = current_traceparent()
        with span("commit", events=1):
            inner = current_traceparent()

    spans = recorded.spans()
    turn, commit = spans["OrderActor.Place"], spans["commit"]
    assert turn.context is not None
    assert commit.context is not None
    assert turn.context.trace_id == commit.context.trace_id == int(TRACE, 16)
    assert turn.parent is not None
    assert turn.parent.span_id == int(PARENT, 16)
    assert commit.parent is not None
    assert commit.parent.span_id == turn.context.span_id
    assert dict(turn.attributes or {}) == {"actor.id": "ord-1"}
    assert outer == f"00-{TRACE}-{turn.context.span_id:016x}-01"
    assert trace_id_of(inner) == TRACE
    assert inner != outer


def test_a_span_without_a_traceparent_starts_a_trace_of_its_own(recorded: Recorded) -> None:
    with span("POST /orders"):
        started = current_traceparent()

    [root] = recorded.spans().values()
    assert root.parent is None
    assert root.context is not None
    assert trace_id_of(started) == f"{root.context.trace_id:032x}"


def test_a_parent_daprd_did_not_sample_is_not_sampled_here_either(recorded: Recorded) -> None:
    with incoming(NOT_SAMPLED), span("OrderActor.Place"):
        forwarded = current_traceparent()

    assert recorded.spans() == {}
    assert trace_id_of(forwarded) == TRACE
    assert forwarded.endswith("-00")


def test_root_spans_follow_the_sampling_rate() -> None:
    with recording(sampling=0.000001) as r:
        for _ in range(20):
            with span("POST /orders"):
                pass
        assert r.spans() == {}


def test_an_exception_marks_the_span_as_an_error(recorded: Recorded) -> None:
    with pytest.raises(RuntimeError), span("commit"):
        raise RuntimeError("fence")

    commit = recorded.spans()["commit"]
    assert not commit.status.is_ok
    assert [e.name for e in commit.events] == ["exception"]


@pytest.mark.parametrize("value", ["", "garbage", "01-" + "0" * 32 + "-" + "0" * 16 + "-01"])
def test_a_malformed_traceparent_has_no_trace_id(value: str) -> None:
    assert trace_id_of(value) == ""
