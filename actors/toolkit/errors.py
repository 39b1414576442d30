"""Domain errors: one tree, stable codes, no transport in sight.

    DomainError                      code "domain.error"
    ├── NotFoundError                "<context>.not_found"       (gateway: 404)
    ├── ConflictError                "<context>.conflict"        (gateway: 409)
    └── RuleViolationError           "<context>.rule_violation"  (gateway: 422)
        └── InvalidCommandError      "request.invalid"           (payload failed validation)

Entities subclass these with their own stable `code` (e.g. InsufficientStockError,
"inventory.insufficient_stock"). Errors cross the actor hop as a result envelope
(actors.toolkit.envelope) and typed clients raise the same class again by code.
"""

from __future__ import annotations

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


_REGISTRY: dict[str, type[DomainError]] = {}


def register(cls: type[DomainError]) -> type[DomainError]:
    """Class decorator: make `cls` known to `error_from_dict` by its code."""
    _REGISTRY[cls.code] = cls
    return cls


for _cls in (DomainError, NotFoundError, ConflictError, RuleViolationError, InvalidCommandError):
    register(_cls)


def error_from_dict(data: dict[str, Any]) -> DomainError:
    """Rebuild the registered error class for `data["code"]` (base class if unknown)."""
    code = str(data.get("code", DomainError.code))
    cls = _REGISTRY.get(code)
    if cls is None:
        base = code.rsplit(".", 1)[-1]
        cls = {"not_found": NotFoundError, "conflict": ConflictError}.get(base, DomainError)
    err = cls(str(data.get("detail", "")), context=data.get("context") or {})
    err.code = code  # type: ignore[misc]  # keep an unknown code as sent
    return err
