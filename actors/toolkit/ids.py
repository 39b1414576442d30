"""Documented shapes of the ids that cross the wire: SKUs, customer ids, order ids.

Patterns are anchored; check a raw string with `re.fullmatch(PATTERN, value)`.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

SKU_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
ORDER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"

Sku = Annotated[str, StringConstraints(pattern=SKU_PATTERN)]
CustomerId = Annotated[str, StringConstraints(pattern=CUSTOMER_ID_PATTERN)]
OrderId = Annotated[str, StringConstraints(pattern=ORDER_ID_PATTERN)]
