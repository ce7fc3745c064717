"""The payment method choice, shared by every form and API body that takes one."""

from __future__ import annotations

from typing import Annotated

from django import forms
from ninja import Field

from billing.gateway import TEST_PAYMENT_METHODS


class PaymentForm(forms.Form):
    payment_method = forms.ChoiceField(choices=list(TEST_PAYMENT_METHODS.items()), initial="pm_card_visa")


# The same choice in a JSON API body's schema (documentation only: PaymentForm decides).
PaymentMethod = Annotated[
    str,
    Field(
        description="A Stripe test payment method.", json_schema_extra={"enum": list(TEST_PAYMENT_METHODS)}
    ),
]
