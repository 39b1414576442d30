"""Publishing a command's events inside its append: CloudEvents for pubsub.redis's streams.

Dapr's Redis Streams pub/sub component (pubsub.redis) keeps a topic as the Redis stream
of the same name, one entry per message, `{data: <the CloudEvent JSON>}`, appended with
`XADD <topic> MAXLEN ~ <maxLenApprox> *`; each subscribing app's daprd reads the stream
through its consumer group and delivers the CloudEvent. When the actors' store is that
same Redis, the fenced append script (actors.toolkit.redis_store) can add the entries
itself, in the same atomic script as the snapshot and the event keys:

- an event is on its topic if and only if its command committed: no publish call after
  the commit, nothing for the outbox to re-send, nothing that can lag;
- a command costs no publish round trip (app -> daprd -> Redis per event).

What daprd would have added and we add ourselves: the CloudEvent attributes (id = the
envelope's event id, type, source = the app id, topic, pubsubname, traceparent, time).
What is lost: daprd's publish span and its pub/sub egress metrics for these events, and
the component's publishing scopes (the actor host reaches Redis directly anyway).
The entry format is the component's (components-contrib 1.18, pubsub/redis); a test
checks it against a real daprd delivering an entry written this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from actors.toolkit import codec
from actors.toolkit.envelope import EventEnvelope
from actors.toolkit.store import Publication

# components/pubsub.yaml's maxLenApprox (a test checks they agree)
STREAM_MAX_LEN: Final = 1_000_000


@dataclass(frozen=True)
class StreamPublishing:
    """Where an actor host's commits publish: the pub/sub component and the app id."""

    pubsub: str  # the component name, CloudEvent `pubsubname`
    source: str  # the publishing app's id, CloudEvent `source` (as daprd sets it)
    max_len: int = STREAM_MAX_LEN  # XADD MAXLEN ~ (0: unbounded)

    def publication(
        self, topic: str, events: list[tuple[EventEnvelope, bytes]], *, traceparent: str
    ) -> Publication:
        """The stream entries of one commit: (envelope, its JSON document) per event."""
        return Publication(
            stream=topic,
            max_len=self.max_len,
            messages=tuple(
                cloud_event(
                    envelope,
                    document,
                    topic=topic,
                    pubsub=self.pubsub,
                    source=self.source,
                    traceparent=traceparent,
                )
                for envelope, document in events
            ),
        )


def cloud_event(
    envelope: EventEnvelope,
    document: bytes,
    *,
    topic: str,
    pubsub: str,
    source: str,
    traceparent: str,
) -> bytes:
    """The CloudEvent daprd would publish for `envelope`, whose JSON is `document`; its
    `time` is when the event occurred (daprd would put the publish time there)."""
    attributes = {
        "id": envelope.event_id,
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "source": source,
        "type": envelope.type,
        "topic": topic,
        "pubsubname": pubsub,
        "traceid": traceparent,
        "traceparent": traceparent,
        "tracestate": "",
        "time": envelope.occurred_at.isoformat(),
    }
    head = codec.dumps(attributes)
    return head[:-1] + b',"data":' + document + b"}"
