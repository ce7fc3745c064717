"""claim_once: the unique constraint decides, and the claim lives or dies with the job's transaction."""

from __future__ import annotations

import pytest
from django.db import transaction

from jobkit.models import JobExecution
from jobkit.unique import claim_once


def test_only_the_first_claim_of_a_key_wins(transactional_db):
    with transaction.atomic():
        assert claim_once("daily:2026-11-27") is not None
    with transaction.atomic():
        assert claim_once("daily:2026-11-27") is None
        assert claim_once("daily:2026-11-28") is not None
    assert sorted(JobExecution.objects.values_list("key", flat=True)) == [
        "daily:2026-11-27",
        "daily:2026-11-28",
    ]


def test_a_claim_rolls_back_with_the_work_it_guarded(transactional_db):
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        assert claim_once("billing:run-7")
        _ = 1 / 0  # the job's work fails after claiming
    with transaction.atomic():
        assert claim_once("billing:run-7") is not None  # the key is free again: the work was never done


def test_claiming_outside_a_transaction_is_refused(transactional_db):
    with pytest.raises(RuntimeError, match=r"inside transaction\.atomic"):
        claim_once("orphan")
    assert not JobExecution.objects.exists()
