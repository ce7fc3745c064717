"""The one way a lower layer calls back up: a registry the higher layer fills in.

Layers import in one direction only (jobkit <- notifications <- billing, shipping <- orders,
subscriptions <- shop). When a lower layer must call code above it (what an invoice's owner does when
a payment settles, which handler a due reminder calls, what runs when a job dies, which subjects the
recovery sweep looks at), the lower layer declares a `Registry` of what it needs, and each app that plays
that role registers its implementation in its `AppConfig.ready()`. The lower layer never names its callers,
not even in a dotted-path string, and a missing registration is a clear error, not a silent no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, T] = {}

    def register(self, key: str, entry: T) -> None:
        """Register `entry` under `key` (once; the same entry again is harmless, as ready() may rerun)."""
        existing = self._entries.get(key)
        if existing is not None and existing != entry:
            raise ValueError(f"a {self.what} is already registered for {key!r}: {existing!r}")
        self._entries[key] = entry

    def __getitem__(self, key: str) -> T:
        try:
            return self._entries[key]
        except KeyError:
            known = ", ".join(sorted(self._entries)) or "none"
            raise LookupError(f"no {self.what} registered for {key!r} (registered: {known})") from None

    def get(self, key: str) -> T | None:
        return self._entries.get(key)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(list(self._entries.items()))

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {sorted(self._entries)})"
