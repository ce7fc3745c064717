"""Reads of the notifications app, for pages."""

from __future__ import annotations

from notifications.models import Reminder


def reminders_for(subject: str) -> list[Reminder]:
    """The subject's planned payment reminders, in order, with their due times (shop clock)."""
    return list(Reminder.objects.filter(subject=subject).order_by("sequence"))
