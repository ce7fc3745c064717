"""Sign-up input validation, shared by the subscribe page and the JSON API."""

from __future__ import annotations

from django import forms

from billing.forms import PaymentForm
from subscriptions.models import Plan


class SignUpForm(PaymentForm):
    email = forms.EmailField(max_length=254)
    plan = forms.ModelChoiceField(
        queryset=Plan.objects.filter(active=True),
        to_field_name="code",
        error_messages={"invalid_choice": "Unknown plan."},
    )
    field_order = ["email", "plan", "payment_method"]
