"""factory-boy factories shared by the tests, the demo seed and the benchmarks."""

from __future__ import annotations

import datetime
from decimal import Decimal

import factory
from django.utils import timezone

from billing.models import Invoice, PaymentAttempt
from orders.models import Product
from subscriptions.models import Plan, Subscription
from subscriptions.periods import issue_period_invoices

# Stripe's test cards (the sandbox knows the same): one that pays, one whose charge is declined.
GOOD_CARD, DECLINING_CARD = "pm_card_visa", "pm_card_chargeDeclined"
# Rows a statement when seeding in bulk: well under PostgreSQL's 65,535 parameters a statement.
SEED_BATCH = 5000

CATALOGUE = [
    ("TEA-EARL", "Earl Grey tea, 100 g", "8.50"),
    ("TEA-SENCHA", "Sencha green tea, 100 g", "11.90"),
    ("COF-ETH", "Ethiopian coffee beans, 250 g", "12.40"),
    ("COF-COL", "Colombian coffee beans, 250 g", "10.80"),
    ("MUG-BLUE", "Stoneware mug, blue", "14.00"),
    ("MUG-WHITE", "Stoneware mug, white", "14.00"),
    ("KETTLE", "Gooseneck kettle", "54.00"),
    ("GRINDER", "Hand coffee grinder", "39.50"),
    ("FILTERS", "Paper filters, 100 pack", "4.20"),
    ("DRIPPER", "Ceramic pour-over dripper", "22.00"),
    ("HONEY", "Wildflower honey, 250 g", "7.30"),
    ("BISCUITS", "Butter biscuits, 200 g", "5.60"),
    ("TEAPOT", "Cast-iron teapot", "48.00"),
    ("SCALE", "Brewing scale", "29.90"),
]


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product
        django_get_or_create = ("sku",)

    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    name = factory.Faker("catch_phrase")
    description = factory.Faker("sentence", nb_words=12)
    price = factory.Faker(
        "pydecimal", left_digits=2, right_digits=2, min_value=Decimal("1"), max_value=Decimal("99")
    )
    currency = "EUR"
    stock = 1000


def seed_catalogue() -> list[Product]:
    """The demo catalogue; re-running it leaves existing products (and their stock) alone."""
    return [ProductFactory(sku=sku, name=name, price=Decimal(price)) for sku, name, price in CATALOGUE]


PLANS = [
    ("tea-monthly", "Tea of the month", "Two loose-leaf teas, 100 g each, every month.", "19.00"),
    ("coffee-monthly", "Coffee of the month", "Two single-origin coffees, 250 g each, every month.", "24.00"),
    ("barista-box", "Barista box", "Coffee, tea, filters and a treat, every month.", "39.00"),
]


class PlanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Plan
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"plan-{n}")
    name = factory.Faker("catch_phrase")
    description = factory.Faker("sentence", nb_words=10)
    price = Decimal("19.00")
    currency = "EUR"


def seed_plans() -> list[Plan]:
    return [
        PlanFactory(code=code, name=name, description=desc, price=Decimal(p)) for code, name, desc, p in PLANS
    ]


def due_subscriptions(
    plan: Plan, count: int, due: datetime.date, *, tag: str, declining_every: int = 0
) -> list[Subscription]:
    """`count` active subscriptions of `plan` whose renewal is due on `due`, created in bulk (5,000 rows
    a statement); with `declining_every`, every so many of them pays with a card that declines.
    `tag` keeps their request keys apart from other sets'. What a billing run is tried on by the tests,
    the failure lab, the fault campaign and the benchmarks."""
    return Subscription.objects.bulk_create(
        (
            Subscription(
                request_key=f"{tag}-{n}",
                email=f"{tag}{n}@example.com",
                plan=plan,
                payment_method=DECLINING_CARD if declining_every and n % declining_every == 0 else GOOD_CARD,
                status=Subscription.Status.ACTIVE,
                step=Subscription.Step.DONE,
                current_period_start=due - datetime.timedelta(days=30),
                current_period_end=due,
            )
            for n in range(1, count + 1)
        ),
        batch_size=SEED_BATCH,
    )


def paid_current_periods(subscriptions: list[Subscription]) -> None:
    """Each subscription's current period as its signup left it: the period's invoice, paid by a
    succeeded attempt. A shop's tables hold these before its first billing run; the benchmarks seed them
    so that PostgreSQL plans the run's queries on tables of the size, and with the statistics, it would
    meet (on empty tables it scans whole the ones the run fills)."""
    now = timezone.now()
    for first in range(0, len(subscriptions), SEED_BATCH):
        lot = subscriptions[first : first + SEED_BATCH]
        periods = issue_period_invoices(
            [(subscription, subscription.current_period_start) for subscription in lot]
        ).periods
        paid = [(subscription, periods[subscription.pk].invoice) for subscription in lot]
        Invoice.objects.filter(pk__in=[invoice.pk for _, invoice in paid]).update(
            status=Invoice.Status.PAID, paid_at=now
        )
        PaymentAttempt.objects.bulk_create(
            PaymentAttempt(
                invoice=invoice,
                amount=invoice.amount,
                currency=invoice.currency,
                payment_method=subscription.payment_method,
                status=PaymentAttempt.Status.SUCCEEDED,
                gateway_reference=f"pi_signup_{invoice.pk}",
                completed_at=now,
            )
            for subscription, invoice in paid
        )
