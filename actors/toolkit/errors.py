"""Domain errors: one tree, stable codes, no transport in sight.

    DomainError                      code "domain.error"
    ├── NotFoundError                "<context>.not_found"       (gateway: 404)
    ├── ConflictError                "<context>.conflict"        (gateway: 409)
    └── RuleViolationError           "<context>.rule_violation"  (gateway: 422)
        └── InvalidCommandError      "request.invalid"           (payload failed validation)

Entities subclass these with their own stable `code` (e.g. InsufficientStockError,
"inventory.insufficient_stock"). Errors cross the actor hop as a result envelope
(actors.toolkit.envelope) and typed clients raise the same class again by code: the
codes an aggregate answers are listed in its AggregateSpec (actors.toolkit.aggregate).
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
