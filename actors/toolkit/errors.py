"""Every error Orderflow raises on purpose, in two trees: the domain's and the infrastructure's.

A refusal is answered; a failure is retried or set aside. Nothing else needs deciding.

    DomainError                      code "domain.error": the command is wrong for the state;
    │                                answered as {"ok": false, ...}, never retried
    ├── NotFoundError                "<context>.not_found"       (gateway: 404)
    ├── ConflictError                "<context>.conflict"        (gateway: 409)
    └── RuleViolationError           "<context>.rule_violation"  (gateway: 422)
        └── InvalidCommandError      "request.invalid"           (payload failed validation)

    InfrastructureError              something outside the domain failed
    ├── TransientError               may succeed later: the call fails so Dapr retries it,
    │   │                            a subscriber answers RETRY, the gateway 503 + Retry-After
    │   ├── SidecarUnavailableError  (sidecar) daprd could not be reached; the one place
    │   │                            the HTTP client's errors are mapped (Http1Error)
    │   ├── SidecarError             (sidecar) daprd answered an actor-API call with an error
    │   ├── RuntimeUnavailableError  (client) an actor call failed: non-200, no envelope
    │   ├── PublishError             (publisher) a publish was not confirmed
    │   ├── ConcurrencyError         (store) the fence refused an append: reload and retry
    │   └── StoreUnavailableError    (redis_store) the event store's Redis did not answer
    └── PermanentError               will never succeed as sent: a subscriber dead-letters it
        │                            (or answers DROP where it owns no dead-letter topic),
        │                            the gateway answers 4xx
        ├── InvalidDeliveryError     (envelope) a delivery that carries no event envelope
        └── DeadLetterError          (router) an event the router can never apply, with a code

Entities subclass the domain errors with their own stable `code` (e.g.
ReservationNotFoundError, "inventory.reservation_not_found"). Domain errors cross the
actor hop as a result envelope (actors.toolkit.envelope) and typed clients raise the
same class again by code: the codes an aggregate answers are listed in its
AggregateSpec (actors.toolkit.aggregate), nothing is registered by importing a module.
Subscribers branch on TransientError / PermanentError, never on a list of classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "domain.error"

    def __init__(self, detail: str, *, context: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context: dict[str, Any] = dict(context or {})

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "detail": self.detail, "context": self.context}


class NotFoundError(DomainError):
    code = "domain.not_found"


class ConflictError(DomainError):
    code = "domain.conflict"


class RuleViolationError(DomainError):
    code = "domain.rule_violation"


class InvalidCommandError(RuleViolationError):
    code = "request.invalid"


class InfrastructureError(Exception):
    """Something outside the domain failed (see the tree above)."""


class TransientError(InfrastructureError):
    """May succeed later: retry (RETRY for a subscriber, 503 for the gateway)."""


class PermanentError(InfrastructureError):
    """Will never succeed as sent: dead-letter it (4xx for the gateway)."""


# The codes every caller knows; an aggregate adds its own (AggregateSpec.errors).
BASE_ERRORS: tuple[type[DomainError], ...] = (
    DomainError,
    NotFoundError,
    ConflictError,
    RuleViolationError,
    InvalidCommandError,
)
_BASE_CODES: dict[str, type[DomainError]] = {cls.code: cls for cls in BASE_ERRORS}


def error_from_dict(
    data: dict[str, Any], codes: Mapping[str, type[DomainError]] | None = None
) -> DomainError:
    """Rebuild the error class `codes` names for `data["code"]` (explicit: an aggregate's
    `AggregateSpec.error_codes`); a code it does not know comes back as its base class
    by suffix, keeping the code as sent."""
    code = str(data.get("code", DomainError.code))
    cls = (codes or _BASE_CODES).get(code)
    if cls is None:
        base = code.rsplit(".", 1)[-1]
        cls = {"not_found": NotFoundError, "conflict": ConflictError}.get(base, DomainError)
    err = cls(str(data.get("detail", "")), context=data.get("context") or {})
    err.code = code  # type: ignore[misc]  # keep an unknown code as sent
    return err
