"""The email ledger's claim (notifications/services.py): who may send an email, decided by its row."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from jobkit.errors import Deferred
from notifications.models import Notification
from notifications.services import _claim, was_sent

pytestmark = pytest.mark.django_db


def test_the_first_sender_holds_a_new_row_as_it_is_written() -> None:
    claimed = _claim("welcome", "subscription:1", "a@example.com")

    row = Notification.objects.get()
    assert claimed is not None and claimed.pk == row.pk
    assert (row.status, row.attempts, row.recipient) == ("sending", 1, "a@example.com")
    assert row.lease_until > timezone.now() and row.message_id


def test_a_second_sender_waits_for_the_lease_and_then_takes_over() -> None:
    first = _claim("welcome", "subscription:1", "a@example.com")
    with pytest.raises(Deferred):
        _claim("welcome", "subscription:1", "a@example.com")

    Notification.objects.update(lease_until=timezone.now() - timedelta(seconds=1))  # the first one died
    second = _claim("welcome", "subscription:1", "a@example.com")

    assert second is not None and second.pk == first.pk and second.message_id == first.message_id
    assert Notification.objects.get().attempts == 2


def test_a_sent_email_is_never_claimed_again() -> None:
    _claim("welcome", "subscription:1", "a@example.com")
    Notification.objects.update(status=Notification.Status.SENT)

    assert _claim("welcome", "subscription:1", "a@example.com") is None
    assert was_sent("welcome", "subscription:1")
    assert not was_sent("declined", "subscription:1")
    assert not was_sent("welcome", "subscription:2")
