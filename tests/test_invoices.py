"""An invoice's number: derived from its row, found again from the number alone."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from billing.invoices import Line, issue_invoice
from billing.models import Invoice


@pytest.fixture
def invoice() -> Invoice:
    return issue_invoice(
        owner="order:1", email="ada@example.com", currency="EUR", lines=[Line("Tea", Decimal("8.50"))]
    )


@pytest.mark.django_db
def test_an_invoice_is_found_by_its_number(invoice: Invoice):
    assert invoice.number == f"INV-{invoice.created_at:%Y}-{invoice.pk:07d}"
    assert Invoice.objects.get(Invoice.numbered(invoice.number)) == invoice
    assert Invoice.objects.get(pk=invoice.pk).number == invoice.number  # the same when read back


@pytest.mark.django_db
@pytest.mark.parametrize(
    "number",
    [
        pytest.param(lambda i: f"INV-{i.created_at.year - 1}-{i.pk:07d}", id="its-id-another-year"),
        pytest.param(lambda i: f"INV-{i.created_at:%Y}-{i.pk + 1:07d}", id="another-id"),
        pytest.param(lambda i: f"inv-{i.created_at:%Y}-{i.pk:07d}", id="lower-case"),
        pytest.param(lambda i: f"INV-{i.created_at:%Y}-{i.pk:07d} ", id="trailing-space"),
        pytest.param(lambda i: f"INV-{i.created_at:%Y}-{'9' * 19}", id="id-over-a-bigint"),
        pytest.param(lambda i: f"INV-9999-{i.pk:07d}", id="year-out-of-range"),
        pytest.param(lambda i: "", id="empty"),
    ],
)
def test_a_number_that_is_not_the_invoice_s_finds_nothing(invoice: Invoice, number):
    assert not Invoice.objects.filter(Invoice.numbered(number(invoice))).exists()


def test_an_unsaved_invoice_has_no_number():
    assert Invoice(owner="order:1").number == ""


@pytest.mark.django_db
def test_staff_find_an_invoice_by_its_number_in_the_admin(admin_client, invoice: Invoice):
    other = issue_invoice(
        owner="order:2", email="bob@example.com", currency="EUR", lines=[Line("Mug", Decimal("14.00"))]
    )
    changelist = reverse("admin:billing_invoice_changelist")

    found = admin_client.get(changelist, {"q": f" {invoice.number} "})
    by_email = admin_client.get(changelist, {"q": "bob@example"})

    assert list(found.context["cl"].result_list) == [invoice]
    assert list(by_email.context["cl"].result_list) == [other]
