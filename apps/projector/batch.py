"""The batch fold: a delivery's events grouped by row and folded onto each row as read. Pure.

`ProjectionStore.project_batch` (apps.projector.store) groups a batch (`groups_of`), reads
the rows of every group in each generation it writes, folds each group onto them
(`fold_each`), writes the `Write`s of the groups that applied something and settles one
result per event (`settle`). Nothing here does I/O: the rows come in as Redis answered
them, a hash or the error that kept it from being read.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from actors.toolkit.envelope import EventEnvelope
from apps.projector.projections import ROW_TYPES, Projection, fold
from readmodels.keys import Generation
from readmodels.rows import Row, from_hash, to_hash

Result = Projection | BaseException  # an event's projection, or why it was not applied
Stored = dict[str, str] | BaseException  # a row as read (a hash), or why it could not be


def row_key(envelope: EventEnvelope) -> str:
    """The key of the envelope's row, without its generation: "<kind>:<aggregate id>"."""
    row_type = ROW_TYPES[envelope.aggregate_type]
    return f"{row_type.kind}:{envelope.aggregate_id}"


@dataclass(frozen=True)
class Group:
    """The events of one row in a batch, in delivery order, and their places in the batch."""

    key: str  # "<kind>:<id>"
    places: list[int]
    envelopes: list[EventEnvelope]


@dataclass(frozen=True)
class Write:
    """What one row needs written in one generation."""

    gen: Generation
    key: str  # the row's key in `gen`
    stored: dict[str, str]  # the row as read: the script checks its bookkeeping against it
    projection: Projection  # all the row's events folded together
    last: EventEnvelope | None = None  # the last one applied there (the freshness meta)

    @functools.cached_property
    def fields(self) -> dict[str, str]:
        """The row's fields as APPLY writes them (HSET): its projection's row, as text."""
        return to_hash(self.projection.after)


@dataclass(frozen=True)
class Folded:
    """A group folded onto its row in every generation."""

    writes: list[Write]  # per generation
    each: list[Result]  # per event: its projection in the active generation, or its error
    last_place: int = -1  # of the last event applied (rows are written in that order)

    @property
    def applied(self) -> bool:
        return any(write.projection.applied for write in self.writes)


def groups_of(envelopes: Sequence[EventEnvelope]) -> list[Group]:
    """The batch by row: rows in order of first delivery, each row's events in delivery order."""
    places: dict[str, list[int]] = {}
    for place, envelope in enumerate(envelopes):
        places.setdefault(row_key(envelope), []).append(place)
    return [Group(key, at, [envelopes[n] for n in at]) for key, at in places.items()]


def merged(row: Row, steps: Sequence[Projection]) -> Projection:
    """Consecutive projections of one row as one: the row to write, every count summed."""
    counts: Counter[tuple[str, str]] = Counter()
    for step in steps:
        counts.update(step.counts)
    return Projection(
        row,
        steps[-1].after if steps else row,
        applied=sum(step.applied for step in steps),
        duplicates=sum(step.duplicates for step in steps),
        out_of_order=sum(step.out_of_order for step in steps),
        counts=counts,
    )


def fold_each(gens: Sequence[Generation], read: Sequence[Stored], group: Group) -> Folded:
    """Fold a row's events one at a time onto its row in each generation (`read`: the row
    as read in each of `gens`, the active one first). An event that cannot be projected
    (InvalidEventError) fails alone; a row Redis failed to read fails every event of it."""
    stored = [found for found in read if not isinstance(found, BaseException)]
    if len(stored) < len(read):
        return Folded(
            [], [next(f for f in read if isinstance(f, BaseException))] * len(group.places)
        )
    first = group.envelopes[0]
    rows = [from_hash(ROW_TYPES[first.aggregate_type], first.aggregate_id, s) for s in stored]
    steps: list[list[Projection]] = [[] for _ in rows]
    last: list[EventEnvelope | None] = [None for _ in rows]
    each: list[Result] = []
    last_place = -1
    for place, envelope in zip(group.places, group.envelopes, strict=True):
        try:
            own = [
                fold(done[-1].after if done else row, [envelope])
                for row, done in zip(rows, steps, strict=True)
            ]
        except Exception as exc:  # the error tree decides what becomes of it (events.py)
            each.append(exc)
            continue
        for n, projection in enumerate(own):
            steps[n].append(projection)
            last[n] = envelope if projection.applied else last[n]
        last_place = place if any(p.applied for p in own) else last_place
        each.append(own[0])
    writes = [
        Write(gen, gen.key(group.key), found, merged(row, done), after)
        for gen, found, row, done, after in zip(gens, stored, rows, steps, last, strict=True)
    ]
    return Folded(writes, each, last_place)


def settle(results: dict[int, Result], group: Group, each: Sequence[Result]) -> None:
    """Record the group's results (one per event) at the events' places in the batch."""
    results.update(zip(group.places, each, strict=True))
