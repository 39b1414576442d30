"""The batch fold, pure (no Redis): a delivery grouped by row, each row's events folded onto
the row as read in every generation, one result per event."""

from __future__ import annotations

from apps.projector.batch import Group, Result, fold_each, groups_of, merged, settle
from apps.projector.projections import InvalidEventError, Projection, empty_row, fold
from readmodels.keys import Layout
from readmodels.rows import to_hash
from tests.apps.histories import MINUTE, restocked, shipped

G0, G1 = Layout().generation("g0"), Layout().generation("g1")


def projections(each: list[Result]) -> list[Projection]:
    assert all(isinstance(result, Projection) for result in each), each
    return [result for result in each if isinstance(result, Projection)]


def test_a_batch_groups_by_row_in_order_of_first_delivery_keeping_each_rows_order() -> None:
    order, stock = shipped("ord-1", "cust-1"), restocked("sku-a", 10, reserve=4)

    groups = groups_of([stock[1], order[1], stock[0], order[0], order[1]])

    assert [(g.key, g.places) for g in groups] == [
        ("stock:sku-a", [0, 2]),
        ("order:ord-1", [1, 3, 4]),
    ]
    assert groups[0].envelopes == [stock[1], stock[0]]
    assert groups[1].envelopes == [order[1], order[0], order[1]]


def test_a_rows_events_out_of_order_with_repeats_write_the_in_order_row_once() -> None:
    order = shipped("ord-1", "cust-1")
    delivered = [order[2], order[0], order[1], order[4], order[3], order[0]]
    [group] = groups_of(delivered)

    folded = fold_each([G0], [{}], group)

    in_order = fold(empty_row(order[0]), order)
    [write] = folded.writes
    assert (write.gen, write.key, write.stored) == (G0, "rm:g0:order:ord-1", {})
    assert write.projection.before == empty_row(order[0])
    assert write.projection.after == in_order.after
    assert write.projection.counts == in_order.counts
    assert sum(write.projection.counts.values()) == 3  # placed, confirmed, shipped
    assert (write.projection.applied, write.projection.duplicates) == (5, 1)
    assert write.projection.out_of_order == 2  # v3 before v1, v5 before v4
    assert [p.applied for p in projections(folded.each)] == [1, 1, 1, 1, 1, 0]
    # the last event applied, not the last delivered (a repeat): its meta, its place
    assert (write.last, folded.last_place) == (order[3], 4)
    assert folded.applied


def test_consecutive_single_event_folds_merge_into_the_fold_of_them_all() -> None:
    order = shipped("ord-1", "cust-1")
    row = empty_row(order[0])
    steps, after = [], row
    for envelope in [order[1], order[0], order[1], order[2]]:
        steps.append(fold(after, [envelope]))
        after = steps[-1].after

    assert merged(row, steps) == fold(row, [order[1], order[0], order[1], order[2]])
    assert merged(row, []) == Projection(row, row)


def test_each_generation_folds_its_own_row_and_each_event_answers_for_the_active_one() -> None:
    stock = restocked("sku-a", 10, reserve=4)
    active = to_hash(fold(empty_row(stock[0]), stock[:1]).after)  # already has v1
    [group] = groups_of([stock[1], stock[0]])

    folded = fold_each([G0, G1], [active, {}], group)

    g0, g1 = folded.writes
    assert (g0.key, g0.stored, g1.key, g1.stored) == (
        "rm:g0:stock:sku-a",
        active,
        "rm:g1:stock:sku-a",
        {},
    )
    assert (g0.projection.applied, g0.projection.duplicates) == (1, 1)
    assert (g1.projection.applied, g1.projection.duplicates) == (2, 0)
    assert g0.projection.after == g1.projection.after == fold(empty_row(stock[0]), stock).after
    assert [p.applied for p in projections(folded.each)] == [1, 0]  # v1: a repeat in g0
    assert (g0.last, g1.last) == (stock[1], stock[0])
    assert folded.last_place == 1  # applied in g1 only, still the last applied


def test_a_row_redis_failed_to_read_fails_every_event_of_it_and_writes_nothing() -> None:
    order = shipped("ord-1", "cust-1")
    error = RuntimeError("WRONGTYPE")
    [group] = groups_of(order[:3])

    folded = fold_each([G0, G1], [{}, error], group)

    assert folded.writes == []
    assert folded.each == [error, error, error]
    assert not folded.applied
    assert folded.last_place == -1


def test_an_event_that_cannot_be_projected_fails_alone_the_row_is_written_without_it() -> None:
    order = shipped("ord-1", "cust-1")
    broken = order[1].model_copy(update={"payload": {}})  # line_reserved without its sku
    [group] = groups_of([order[0], broken, order[2]])

    folded = fold_each([G0], [{}], group)

    first, failed, third = folded.each
    assert isinstance(failed, InvalidEventError)
    assert [p.applied for p in projections([first, third])] == [1, 1]
    [write] = folded.writes
    assert write.projection.applied == 2
    after = write.projection.after
    assert (after.aggregate_version, after.applied_above) == (1, (3,))
    assert write.projection.counts == {(MINUTE, "placed"): 1}


def test_a_group_of_repeats_only_has_nothing_to_write() -> None:
    order = shipped("ord-1", "cust-1")
    done = fold(empty_row(order[0]), order).after
    [group] = groups_of([order[4], order[0]])

    folded = fold_each([G0], [to_hash(done)], group)

    assert not folded.applied
    assert [p.duplicates for p in projections(folded.each)] == [1, 1]
    [write] = folded.writes
    assert (write.projection.after, write.last, folded.last_place) == (done, None, -1)


def test_results_settle_at_the_places_of_their_events_in_the_batch() -> None:
    order = shipped("ord-1", "cust-1")
    results: dict[int, Result] = {5: RuntimeError("another row's")}
    first, second = fold(empty_row(order[0]), order[:1]), RuntimeError("lost")

    settle(results, Group("order:ord-1", [3, 0], order[:2]), [first, second])

    assert results == {5: results[5], 3: first, 0: second}
