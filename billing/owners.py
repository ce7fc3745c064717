"""Who an invoice belongs to, and how billing tells them about payments, without importing them.

An invoice's `owner` is "kind:id". The app that owns that kind of invoice registers, in its
`AppConfig.ready()`, an object (a module will do) with two functions (see `jobkit/registry.py`), each
taking a list, so a billing batch asks and tells an owner about a whole batch of invoices in a few queries:
- `wanting_payment(invoices) -> set of invoice ids`: which of its invoices is the owner still waiting to
  be paid? A charge job that arrives after the owner moved on (paid, cancelled, declined) opens no new
  attempt.
- `payments_settled(attempts) -> None`: these payment attempts succeeded or failed; runs inside the
  transaction that records them, so the owner's reaction commits with them or not at all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Protocol, TypeVar

from billing.models import Invoice, PaymentAttempt
from jobkit.registry import Registry


class InvoiceOwner(Protocol):
    def wanting_payment(self, invoices: list[Invoice]) -> set[int]: ...

    def payments_settled(self, attempts: list[PaymentAttempt]) -> None: ...


owners: Registry[InvoiceOwner] = Registry("invoice owner")

Item = TypeVar("Item")


def _by_owner_kind(items: Iterable[Item], invoice_of: Callable[[Item], Invoice]) -> dict[str, list[Item]]:
    groups: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        groups[invoice_of(item).owner_kind].append(item)
    return groups


def wanting_payment(invoices: Iterable[Invoice]) -> set[int]:
    """The ids of the invoices whose owners still want them paid."""
    wanted: set[int] = set()
    for kind, group in _by_owner_kind(invoices, lambda invoice: invoice).items():
        wanted |= owners[kind].wanting_payment(group)
    return wanted


def payments_settled(attempts: Iterable[PaymentAttempt]) -> None:
    for kind, group in _by_owner_kind(attempts, lambda attempt: attempt.invoice).items():
        owners[kind].payments_settled(group)
