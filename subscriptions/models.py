from __future__ import annotations

import uuid

from django.db import models


class Plan(models.Model):
    """A monthly subscription box."""

    class Interval(models.TextChoices):
        MONTH = "month"

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=80)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="EUR")
    interval = models.CharField(max_length=8, choices=Interval.choices, default=Interval.MONTH)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["price"]
        constraints = [models.CheckConstraint(condition=models.Q(price__gt=0), name="plan_price_positive")]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Subscription(models.Model):
    """A monthly subscription box. Sign-up is a workflow of steps, each resumable on its own."""

    class Status(models.TextChoices):
        PENDING = "pending"  # signed up; the sign-up workflow is running
        ACTIVE = "active"
        COMPENSATING = "compensating"  # a step after the charge failed for good; refunding
        FAILED = "failed"
        PAST_DUE = "past_due"  # a renewal charge failed; reminders are going out
        CANCELLED = "cancelled"

    class Step(models.TextChoices):
        CHARGE = "charge"
        REGISTER_DELIVERY = "register_delivery"
        GRANT_ENTITLEMENT = "grant_entitlement"
        DONE = "done"

    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    request_key = models.CharField(
        max_length=255, unique=True, help_text="sign-up request key: one subscription"
    )
    email = models.EmailField()
    plan = models.ForeignKey(Plan, related_name="subscriptions", on_delete=models.PROTECT)
    payment_method = models.CharField(max_length=255)
    status = models.CharField(max_length=14, choices=Status.choices, default=Status.PENDING)
    step = models.CharField(max_length=20, choices=Step.choices, default=Step.CHARGE)
    status_reason = models.CharField(max_length=300, blank=True)
    current_period_start = models.DateField()
    current_period_end = models.DateField(db_index=True, help_text="the next renewal is due on this date")
    cancel_at_period_end = models.BooleanField(default=False)
    carrier_registration = models.CharField(max_length=255, blank=True)
    entitled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        # An Index rather than db_index=True: on PostgreSQL that adds a second index for LIKE, which no
        # query of a status needs and every renewal (an update of the indexed period end) writes to.
        indexes = [models.Index(fields=["status"], name="subscription_status")]

    def __str__(self) -> str:
        return f"Subscription {self.public_id} ({self.status})"

    @property
    def subject(self) -> str:
        return f"subscription:{self.public_id}"


class BillingRun(models.Model):
    """Billing of every subscription due on one date: one run per date, however often it is started."""

    class Status(models.TextChoices):
        PLANNING = "planning"
        RUNNING = "running"
        DONE = "done"

    billing_date = models.DateField(unique=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PLANNING)
    batch_size = models.PositiveIntegerField()
    batches_total = models.PositiveIntegerField(default=0)
    batches_done = models.PositiveIntegerField(default=0)
    batches_failed = models.PositiveIntegerField(default=0)
    subscriptions_billed = models.PositiveIntegerField(default=0)
    subscriptions_failed = models.PositiveIntegerField(default=0)
    amount_billed = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-billing_date"]

    def __str__(self) -> str:
        return f"billing run {self.billing_date} ({self.status})"

    @property
    def subject(self) -> str:
        return f"billing_run:{self.pk}"


class BillingPeriod(models.Model):
    """One billed month of a subscription: its invoice, and the billing run that issued it (none for the
    sign-up's first month). Unique per subscription and start, so re-running a run or a batch never bills
    a period twice. The subscription points at its invoices; billing knows it only as their owner."""

    # No index of their own: the unique (subscription, start) and the (billing run, subscription) index
    # below start with them and serve their look-ups; each index is one more write for every period.
    subscription = models.ForeignKey(
        Subscription, related_name="periods", on_delete=models.PROTECT, db_index=False
    )
    start = models.DateField()
    end = models.DateField()
    invoice = models.OneToOneField("billing.Invoice", related_name="+", on_delete=models.PROTECT)
    billing_run = models.ForeignKey(
        BillingRun, null=True, blank=True, related_name="periods", on_delete=models.PROTECT, db_index=False
    )

    class Meta:
        ordering = ["subscription", "start"]
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "start"], name="one_invoice_per_subscription_period"
            )
        ]
        # A billing batch counts its periods by (run, subscription id range).
        indexes = [models.Index(fields=["billing_run", "subscription"], name="period_run_subscription")]

    def __str__(self) -> str:
        return f"{self.subscription} {self.start}..{self.end}"


class BillingBatch(models.Model):
    """A keyset page of due subscriptions (ids in (after_id, last_id]); billed by one job, retried alone."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed"

    run = models.ForeignKey(BillingRun, related_name="batches", on_delete=models.CASCADE)
    number = models.PositiveIntegerField()
    after_id = models.BigIntegerField()
    last_id = models.BigIntegerField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    billed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    amount = models.DecimalField(max_digits=14, decimal_places=2, default=0)

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"], name="one_batch_per_run_number")]

    def __str__(self) -> str:
        return f"batch {self.number} of {self.run}"
