"""The payment method choice, shared by every form and API body that takes one."""

from __future__ import annotations

from django import forms

from billing.gateway import TEST_PAYMENT_METHODS


class PaymentForm(forms.Form):
    payment_method = forms.ChoiceField(choices=list(TEST_PAYMENT_METHODS.items()), initial="pm_card_visa")
