"""The business invariants a campaign must leave intact, checked against the outside world's own records
(the sandbox's listings: payment intents, refunds, shipments, registrations, caught mail) and the
shop's database. Each check returns a Row: what it looked at, and every violation with its ids.
"""

from __future__ import annotations

import datetime
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Q, QuerySet

from apikit.models import IdempotencyRecord
from billing.models import Invoice, PaymentAttempt, Refund
from chaos.load import DECLINING_CARD, Answer, Request
from chaos.stack import MAIL_WORKERS
from jobkit.models import JobRun
from notifications.models import Notification
from orders import emails as order_emails
from orders.models import Order
from sandbox.testing import SandboxControl
from shipping.models import Shipment
from subscriptions import emails as subscription_emails
from subscriptions.models import BillingBatch, BillingRun, Subscription
from subscriptions.periods import add_month
from subscriptions.renewals import batch_count

# A repeated Message-ID is explained by a kill of a mail worker (or a cut database connection) between
# the SMTP server's acceptance and the ledger's commit, milliseconds apart: allow this much clock slack.
REPEAT_SLACK_SECONDS = 5.0
# Subjects whose jobs must all have ended once the shop settled (the periodic jobs' never do).
DOMAIN_SUBJECTS = ("order:", "subscription:", "billing_run:", "billing_batch:", "billing_date:")
UNFINISHED_JOBS = (*JobRun.LIVE_STATUSES, JobRun.Status.UNSENT)
SIGNUP_KEY_PREFIX = "api:"  # subscriptions made through the API (the billing run's are made in bulk)


@dataclass
class Row:
    invariant: str
    checked: int
    violations: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def held(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class BillingPlan:
    """The billing run the campaign starts: `count` subscriptions due, every `declining_every`th declines."""

    date: datetime.date
    count: int
    declining: int
    price: Decimal
    batch_size: int


@dataclass(frozen=True)
class OutageRecord:
    """What the gateway and its breaker saw during the gateway outage."""

    calls: int  # requests the sandbox's payments service received while the outage was on
    probes: int  # probes the breaker admitted meanwhile (its own counter)
    transitions: list[dict[str, Any]]  # the breaker's transitions within the outage, oldest first
    threshold: int
    in_flight: int  # gateway calls that may be in flight at one moment


@dataclass
class Evidence:
    sandbox: SandboxControl
    requests: list[Request]
    answers: list[Answer]
    billing: BillingPlan
    kills: list[tuple[float, str]]  # (wall clock, worker) of every kill, crash points included
    blips: list[tuple[float, float]]  # database blips (wall clock)
    broker_down: list[tuple[float, float]]
    outage: OutageRecord | None


@dataclass
class Outside:
    """The sandbox's records, read once."""

    intents: list[dict[str, Any]]
    refunds: list[dict[str, Any]]
    shipments: list[dict[str, Any]]
    registrations: list[dict[str, Any]]
    mail: list[dict[str, Any]]

    @classmethod
    def read(cls, sandbox: SandboxControl) -> Outside:
        return cls(
            sandbox.payment_intents(),
            sandbox.refunds(),
            sandbox.shipments(),
            sandbox.registrations(),
            sandbox.mail_messages(),
        )


def check_all(evidence: Evidence) -> list[Row]:
    outside = Outside.read(evidence.sandbox)
    checks: list[Callable[[Evidence, Outside], Row]] = [
        paid_invoices_match_the_gateway,
        declines_are_never_paid,
        refunds_exactly_where_compensated,
        orders_end_settled,
        signups_end_settled,
        billing_run_exact,
        nothing_left_in_flight,
        one_shipment_per_completed_order,
        one_live_registration_per_active_signup,
        emails_once_per_kind_and_subject,
        email_repeats_explained,
        breaker_limits_calls_during_the_outage,
        api_answers,
        one_resource_per_idempotency_key,
        job_timeline_ended,
        dead_letters_explained,
    ]
    return [check(evidence, outside) for check in checks]


def minor(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def signups() -> Any:
    return Subscription.objects.filter(request_key__startswith=SIGNUP_KEY_PREFIX)


# --- money --------------------------------------------------------------------------------------------------
def paid_invoices_match_the_gateway(evidence: Evidence, outside: Outside) -> Row:
    row = Row("paid invoice = one succeeded PaymentIntent, same id and amount", 0)
    succeeded: dict[str, list[dict]] = defaultdict(list)
    for intent in outside.intents:
        if intent["status"] == "succeeded":
            succeeded[intent["metadata"].get("invoice_number", "")].append(intent)
    recorded = {attempt.invoice_id: attempt for attempt in PaymentAttempt.objects.filter(status="succeeded")}
    numbers = set()
    for invoice in Invoice.objects.order_by("pk"):
        row.checked += 1
        numbers.add(invoice.number)
        charged = succeeded.get(invoice.number, [])
        if invoice.status != Invoice.Status.PAID:
            if charged:
                row.violations.append(f"{invoice.number} is {invoice.status} but charged: {_ids(charged)}")
            continue
        if len(charged) != 1:
            row.violations.append(f"{invoice.number} paid, {len(charged)} succeeded intents {_ids(charged)}")
            continue
        [intent] = charged
        attempt = recorded.get(invoice.pk)
        if attempt is None or attempt.gateway_reference != intent["id"]:
            ours = attempt.gateway_reference if attempt else "no succeeded attempt"
            row.violations.append(f"{invoice.number}: shop records {ours}, gateway charged {intent['id']}")
        if intent["amount"] != minor(invoice.amount) or intent["currency"] != invoice.currency.lower():
            row.violations.append(
                f"{invoice.number}: {invoice.amount} {invoice.currency}, gateway "
                f"{intent['amount']} {intent['currency']} ({intent['id']})"
            )
    for number, intents in succeeded.items():
        if number not in numbers:
            row.violations.append(f"charged for unknown invoice {number!r}: {_ids(intents)}")
    row.note = f"{sum(map(len, succeeded.values()))} succeeded intents"
    return row


def declines_are_never_paid(evidence: Evidence, outside: Outside) -> Row:
    row = Row("no declined payment recorded as paid", 0)
    attempts = {a.gateway_reference: a for a in PaymentAttempt.objects.exclude(gateway_reference="")}
    for intent in outside.intents:
        if intent["status"] == "succeeded":
            continue
        row.checked += 1
        attempt = attempts.get(intent["id"])
        if attempt is not None and attempt.status != PaymentAttempt.Status.FAILED:
            row.violations.append(f"{intent['id']} declined, attempt {attempt.public_id} {attempt.status}")
    for attempt in PaymentAttempt.objects.filter(status="succeeded", payment_method=DECLINING_CARD):
        row.violations.append(f"attempt {attempt.public_id} with {DECLINING_CARD} recorded as succeeded")
    paid = Order.objects.filter(payment_method=DECLINING_CARD, status__in=("paid", "completed"))
    row.violations += [f"order {o.public_id} paid with {DECLINING_CARD}" for o in paid]
    active = signups().filter(payment_method=DECLINING_CARD, status="active")
    row.violations += [f"sign-up {s.public_id} active with {DECLINING_CARD}" for s in active]
    row.note = f"{row.checked} declined at the gateway"
    return row


def refunds_exactly_where_compensated(evidence: Evidence, outside: Outside) -> Row:
    """Compensation ran for every sign-up that failed after its charge succeeded."""
    row = Row("refunds exactly where compensation ran, full amount, once", 0)
    compensated: dict[str, Subscription] = {}  # payment intent -> sign-up
    for subscription in signups().filter(status="failed"):
        first = subscription.periods.order_by("start").first()
        attempt = first and first.invoice.attempts.filter(status="succeeded").first()
        if attempt:
            compensated[attempt.gateway_reference] = subscription
    refunded: dict[str, list[dict]] = defaultdict(list)
    for refund in outside.refunds:
        refunded[refund["payment_intent"]].append(refund)
    intents = {intent["id"]: intent for intent in outside.intents}
    local = {r.attempt.gateway_reference: r for r in Refund.objects.select_related("attempt")}
    for intent_id, subscription in compensated.items():
        row.checked += 1
        refunds = refunded.get(intent_id, [])
        if len(refunds) != 1:
            row.violations.append(f"sign-up {subscription.public_id}: {len(refunds)} refunds of {intent_id}")
            continue
        [refund] = refunds
        if refund["amount"] != intents[intent_id]["amount"] or refund["status"] != "succeeded":
            row.violations.append(
                f"{refund['id']}: {refund['amount']} ({refund['status']}) of {intents[intent_id]['amount']}"
            )
        ours = local.get(intent_id)
        if ours is None or ours.status != Refund.Status.SUCCEEDED or ours.gateway_reference != refund["id"]:
            state = f"{ours.status} {ours.gateway_reference or '-'}" if ours else "none"
            row.violations.append(f"{refund['id']}: the shop's refund row is {state}")
    for intent_id, refunds in refunded.items():
        if intent_id not in compensated:
            row.violations.append(f"refund {_ids(refunds)} of {intent_id}, which no compensation refunds")
    row.note = f"{len(compensated)} compensations"
    return row


# --- where everything ended ---------------------------------------------------------------------------------
def orders_end_settled(evidence: Evidence, outside: Outside) -> Row:
    row = Row("orders end completed, or failed with a reason", 0)
    statuses: Counter[str] = Counter()
    for order in Order.objects.order_by("pk"):
        row.checked += 1
        statuses[order.status] += 1
        if order.status == Order.Status.COMPLETED:
            continue
        if order.status in (Order.Status.PAYMENT_FAILED, Order.Status.CANCELLED, Order.Status.EXPIRED):
            if not order.status_reason and not _dead_jobs(order.subject):
                row.violations.append(f"order {order.public_id} {order.status} with no reason or dead letter")
            continue
        row.violations.append(f"order {order.public_id} still {order.status}{_dead_suffix(order.subject)}")
    row.note = _counts(statuses)
    return row


def signups_end_settled(evidence: Evidence, outside: Outside) -> Row:
    row = Row("sign-ups end active or failed", 0)
    statuses: Counter[str] = Counter()
    for subscription in signups().order_by("pk"):
        row.checked += 1
        statuses[subscription.status] += 1
        if subscription.status == Subscription.Status.ACTIVE:
            continue
        if subscription.status == Subscription.Status.FAILED and subscription.status_reason:
            continue
        row.violations.append(
            f"sign-up {subscription.public_id} {subscription.status} at step {subscription.step}"
            f"{_dead_suffix(subscription.subject)}"
        )
    row.note = _counts(statuses)
    return row


def billing_run_exact(evidence: Evidence, outside: Outside) -> Row:
    plan = evidence.billing
    row = Row("billing run done, counters exact", plan.count)
    runs = list(BillingRun.objects.filter(billing_date=plan.date))
    if len(runs) != 1:
        row.violations.append(f"{len(runs)} billing runs for {plan.date}")
        return row
    [run] = runs
    billed, batches = plan.count - plan.declining, batch_count(plan.count, plan.batch_size)
    expected = {
        "status": "done",
        "batches_total": batches,
        "batches_done": batches,
        "batches_failed": 0,
        "subscriptions_billed": billed,
        "subscriptions_failed": plan.declining,
        "amount_billed": billed * plan.price,
    }
    for name, want in expected.items():
        if getattr(run, name) != want:
            row.violations.append(f"run {run.pk} {name} = {getattr(run, name)}, expected {want}")
    renewed_until = add_month(plan.date)
    for subscription in Subscription.objects.exclude(request_key__startswith=SIGNUP_KEY_PREFIX):
        if subscription.payment_method == DECLINING_CARD:
            ok = subscription.status == Subscription.Status.PAST_DUE
        else:
            ok = subscription.status == "active" and subscription.current_period_end == renewed_until
        if not ok:
            row.violations.append(
                f"subscription {subscription.pk} ({subscription.payment_method}) {subscription.status}"
                f" until {subscription.current_period_end}"
            )
    row.note = f"{run.batches_total} batches, {run.subscriptions_billed} billed, {plan.declining} declining"
    return row


def nothing_left_in_flight(evidence: Evidence, outside: Outside) -> Row:
    row = Row("no payment, refund, email or batch left in flight", 0)
    leftovers: list[tuple[str, Iterable[Any]]] = [
        ("payment attempt", PaymentAttempt.objects.filter(status="pending")),
        ("refund", Refund.objects.filter(status="pending")),
        ("email", Notification.objects.exclude(status="sent")),
        ("billing batch", BillingBatch.objects.exclude(status="done")),
    ]
    row.checked = (
        PaymentAttempt.objects.count() + Refund.objects.count() + Notification.objects.count()
    ) + BillingBatch.objects.count()
    for what, rows in leftovers:
        row.violations += [f"{what} {item} ({item.pk})" for item in rows]
    return row


# --- the outside world --------------------------------------------------------------------------------------
def one_shipment_per_completed_order(evidence: Evidence, outside: Outside) -> Row:
    row = Row("one shipment per completed order, none for others", 0)
    at_carrier: dict[str, list[dict]] = defaultdict(list)
    for shipment in outside.shipments:
        at_carrier[shipment["reference"]].append(shipment)
    local = dict(Shipment.objects.values_list("reference", "carrier_reference"))
    completed = {str(o) for o in Order.objects.filter(status="completed").values_list("public_id", flat=True)}
    for reference in sorted(completed | set(at_carrier)):
        row.checked += 1
        shipments = at_carrier.get(reference, [])
        if reference not in completed:
            row.violations.append(f"order {reference} is not completed but shipped: {_ids(shipments)}")
        elif len(shipments) != 1:
            row.violations.append(f"order {reference}: {len(shipments)} shipments {_ids(shipments)}")
        elif local.get(reference) != shipments[0]["id"]:
            ours = local.get(reference)
            row.violations.append(f"order {reference}: shop records {ours}, carrier {_ids(shipments)}")
    return row


def one_live_registration_per_active_signup(evidence: Evidence, outside: Outside) -> Row:
    row = Row("one live carrier registration per active sign-up, none for failed", 0)
    live: dict[str, list[dict]] = defaultdict(list)
    for registration in outside.registrations:
        if registration["status"] == "active":
            live[registration["reference"]].append(registration)
    for subscription in signups().order_by("pk"):
        row.checked += 1
        registrations = live.pop(str(subscription.public_id), [])
        if subscription.status == Subscription.Status.ACTIVE:
            if len(registrations) != 1:
                row.violations.append(f"active {subscription.public_id}: {len(registrations)} live")
            elif registrations[0]["id"] != subscription.carrier_registration:
                row.violations.append(
                    f"active {subscription.public_id}: shop records {subscription.carrier_registration!r}, "
                    f"carrier {registrations[0]['id']}"
                )
        elif registrations:
            status = subscription.status
            row.violations.append(f"{status} {subscription.public_id}: {_ids(registrations)} live")
    for reference, registrations in live.items():
        row.violations.append(f"live registration of unknown subscription {reference}: {_ids(registrations)}")
    cancelled = sum(r["status"] == "cancelled" for r in outside.registrations)
    row.note = f"{len(outside.registrations)} registrations, {cancelled} cancelled"
    return row


def emails_once_per_kind_and_subject(evidence: Evidence, outside: Outside) -> Row:
    """The ledger holds one Message-ID per (kind, subject); every caught message carries one of them, to
    the ledger's recipient, and every email the outcome calls for was sent."""
    row = Row("emails: one Message-ID per (kind, subject), as the ledger says", 0)
    caught: dict[str, list[dict]] = defaultdict(list)
    for message in outside.mail:
        caught[message["message_id"]].append(message)
    ledger = {n.message_id: n for n in Notification.objects.all()}
    for message_id, notification in ledger.items():
        row.checked += 1
        copies = caught.get(message_id, [])
        if notification.status == Notification.Status.SENT and not copies:
            row.violations.append(f"{notification.kind} {notification.subject}: sent, never caught")
        if any(message["to"] != [notification.recipient] for message in copies):
            row.violations.append(f"{notification.kind} {notification.subject}: sent to someone else")
    for message_id, copies in caught.items():
        if message_id not in ledger:
            row.violations.append(f"caught {len(copies)} message(s) {message_id!r} the ledger does not know")
    sent = set(Notification.objects.filter(status="sent").values_list("kind", "subject"))
    for kind, subject in _expected_emails():
        if (kind, subject) not in sent:
            row.violations.append(f"{kind} for {subject} never sent")
    row.note = f"{len(outside.mail)} messages caught"
    return row


def _expected_emails() -> Iterable[tuple[str, str]]:
    for order in Order.objects.filter(status="completed"):
        yield order_emails.CONFIRMATION, order.subject
        yield order_emails.INVOICE, order.subject
    for subscription in signups().filter(status__in=("active", "failed")):
        if subscription.status == Subscription.Status.ACTIVE:
            yield subscription_emails.WELCOME, subscription.subject
        elif subscription.periods.filter(invoice__attempts__refund__isnull=False).exists():
            yield subscription_emails.REFUNDED, subscription.subject
        else:
            yield subscription_emails.DECLINED, subscription.subject


def email_repeats_explained(evidence: Evidence, outside: Outside) -> Row:
    """A message caught twice with the same Message-ID: the sender died (or lost its database connection)
    after the SMTP server accepted it and before the ledger recorded it. Nothing else may repeat one."""
    row = Row("email repeats only after a cut between SMTP and the ledger", len(outside.mail))
    received: dict[str, list[float]] = defaultdict(list)
    for message in outside.mail:
        received[message["message_id"]].append(_wall(message["received_at"]))
    cuts = [at for at, worker in evidence.kills if worker in MAIL_WORKERS]
    explained = 0
    for message_id, times in received.items():
        if len(times) < 2:
            continue
        first = min(times)
        near = [at for at in cuts if first - 1 <= at <= first + REPEAT_SLACK_SECONDS] + [
            start for start, end in evidence.blips if start - 1 <= first <= end + REPEAT_SLACK_SECONDS
        ]
        if near:
            explained += 1
        else:
            row.violations.append(f"{message_id} caught {len(times)} times, no cut near {_clock(first)}")
    repeats = sum(len(times) > 1 for times in received.values())
    row.note = f"{repeats} repeated, {explained} explained"
    return row


def breaker_limits_calls_during_the_outage(evidence: Evidence, outside: Outside) -> Row:
    """During the outage the gateway sees the calls that open the breaker, then one probe per cooldown.
    Before the first failures come back, every call already in flight reaches it, and each thread of a
    billing batch holding a permit makes one more call, whose failure ends the batch's calls (a batch keeps
    several going in each process): so the first phase is max(threshold, calls in flight) calls
    (jobkit/breaker.py, jobkit/outside.call_concurrently)."""
    record = evidence.outage
    if record is None:
        return Row("gateway calls during the outage within threshold + probes", 0, ["the outage never ran"])
    allowed = max(record.threshold, record.in_flight) + record.probes
    row = Row("gateway calls during the outage within threshold + probes", record.calls)
    if record.calls > allowed:
        row.violations.append(
            f"{record.calls} calls > {allowed} = max(threshold {record.threshold}, "
            f"{record.in_flight} in flight) + {record.probes} probes"
        )
    previous = None
    for transition in record.transitions:
        step = (transition["from"], transition["to"])
        if transition["to"] == "closed":
            row.violations.append(f"closed at {_clock(transition['at'])} ({transition['reason']})")
        if previous == step == ("open", "half_open"):
            row.violations.append(f"two half-open periods in a row at {_clock(transition['at'])}")
        previous = step
    half_opened = sum(t["to"] == "half_open" for t in record.transitions)
    row.note = f"{record.calls} calls <= {allowed}; {record.probes} probes, {half_opened} half-open"
    return row


# --- the API and the machinery ------------------------------------------------------------------------------
def api_answers(evidence: Evidence, outside: Outside) -> Row:
    row = Row("API requests answered 2xx/4xx (5xx, refused, timed out listed)", len(evidence.answers))
    during_down = 0
    for answer in evidence.answers:
        if any(start <= answer.sent_at <= end for start, end in evidence.broker_down):
            during_down += 1
        if answer.status is None or answer.status >= 500:
            row.violations.append(f"{answer.kind} {answer.key}: {answer.status or answer.error}")
    client_errors = sum(a.status is not None and 400 <= a.status < 500 for a in evidence.answers)
    row.note = f"{during_down} while the broker was down, {client_errors} 4xx"
    return row


def one_resource_per_idempotency_key(evidence: Evidence, outside: Outside) -> Row:
    """Every answer for one key names the same resource, which the key's record names; nothing else was
    created (a re-sent request made nothing new)."""
    row = Row("Idempotency-Key: one order or sign-up per key", 0)
    answered: dict[tuple[str, str], set[str]] = defaultdict(set)
    for answer in evidence.answers:
        if answer.status is not None and 200 <= answer.status < 300:
            answered[answer.kind, answer.key].add(answer.resource_id)
    scopes = {"order": "orders.order", "signup": "subscriptions.subscription"}  # apikit.idempotent_create
    records = {
        (kind, record.key): record.resource_id
        for kind, scope in scopes.items()
        for record in IdempotencyRecord.objects.filter(scope=scope)
    }
    for (kind, key), ids in answered.items():
        row.checked += 1
        if ids != {records.get((kind, key))}:
            recorded = records.get((kind, key))
            row.violations.append(f"{kind} {key}: answered {sorted(ids)}, recorded {recorded}")
    made = {
        "order": {str(i) for i in Order.objects.values_list("public_id", flat=True)},
        "signup": {str(i) for i in signups().values_list("public_id", flat=True)},
    }
    for kind, ids in made.items():
        keyed = {resource for (k, _), resource in records.items() if k == kind}
        row.violations += [f"{kind} {i} made without a key's record" for i in sorted(ids - keyed)]
    resent = sum(request.resend != "" for request in evidence.requests)
    row.note = f"{resent} requests sent twice"
    return row


def domain_jobs() -> QuerySet[JobRun]:
    """The timeline of orders, sign-ups and billing runs: not the periodic jobs, which never end."""
    domain = Q()
    for prefix in DOMAIN_SUBJECTS:
        domain |= Q(subject__startswith=prefix)
    return JobRun.objects.filter(domain)


def job_timeline_ended(evidence: Evidence, outside: Outside) -> Row:
    runs = domain_jobs()
    row = Row("job timeline: no job queued/started/retrying/unsent", runs.count())
    unfinished = runs.filter(status__in=UNFINISHED_JOBS)
    row.violations = [f"{run.name} {run.subject} {run.status}" for run in unfinished]
    return row


def dead_letters_explained(evidence: Evidence, outside: Outside) -> Row:
    """A job may die only where its subject ended in a failure it explains (a rejected registration
    compensated); a dead periodic job (the sweep, reminders) is replaced by its next run."""
    dead = list(JobRun.objects.filter(status=JobRun.Status.DEAD))
    row = Row("dead letters only on subjects that failed", len(dead))
    failed = {s.subject for s in signups().filter(status="failed")} | {
        o.subject for o in Order.objects.filter(status__in=("payment_failed", "cancelled", "expired"))
    }
    periodic = 0
    for run in dead:
        if not run.subject.startswith(DOMAIN_SUBJECTS):
            periodic += 1
        elif run.subject not in failed:
            row.violations.append(f"{run.name} {run.subject}: {run.last_error[:100]}")
    row.note = f"{len(dead) - periodic} on failed subjects, {periodic} periodic"
    return row


# --- helpers ------------------------------------------------------------------------------------------------
def _ids(objects: list[dict]) -> str:
    return ",".join(o["id"] for o in objects) or "-"


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{n} {status}" for status, n in counter.most_common())


def _dead_jobs(subject: str) -> list[JobRun]:
    return list(JobRun.objects.filter(subject=subject, status=JobRun.Status.DEAD))


def _dead_suffix(subject: str) -> str:
    dead = _dead_jobs(subject)
    return f" (dead: {', '.join(run.name for run in dead)})" if dead else ""


def _wall(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _clock(wall: float) -> str:
    return datetime.datetime.fromtimestamp(wall).strftime("%H:%M:%S")
