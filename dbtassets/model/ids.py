"""The identifier every other module names a dbt node by."""

from __future__ import annotations

from typing import NewType

UniqueId = NewType("UniqueId", str)  # dbt's unique_id: model.shop.orders, source.shop.raw.orders, test.shop.…
