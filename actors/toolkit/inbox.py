"""Inbox dedupe: an actor remembers, per message id, the result it answered.

A command or event whose message id the actor already applied gets the original result
back and changes nothing. Each applied message id is one actor state key,
`inbox-<sha256 of the id>`, written in the same transaction as the effect it caused and
expiring after a TTL (`DEFAULT_TTL`, ORDERFLOW_INBOX_TTL_S): memory is bounded by the
message rate times the TTL, and the snapshot never grows with it. A duplicate arriving
after its key expired is decided again, so handlers keep a second line of defence in
the domain (state-machine checks, "already reserved for this order" rules) that turns
such a late re-delivery into a no-op. Redis Streams re-delivers within seconds
(processingTimeout) and daprd's retries within its retry policy, far inside the TTL.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Final

DEFAULT_TTL: Final = dt.timedelta(minutes=10)


def inbox_key(message_id: str) -> str:
    """The state key of a message id (hashed: ids may hold characters keys may not)."""
    return "inbox-" + hashlib.sha256(message_id.encode()).hexdigest()[:40]
