from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"

    def ready(self) -> None:
        # What the lower layers call back (jobkit/registry.py): one registration each, here.
        from billing.owners import owners
        from jobkit.recovery import finders
        from jobkit.tasks import dead_job_handlers
        from notifications.reminders import handlers
        from subscriptions import jobs, payments, recovery, reminders, renewals, signup

        owners.register("subscription", payments)
        handlers.register("subscription", reminders)
        # A step after the charge that dies for good (a permanent refusal, or retries exhausted) is
        # compensated; a billing batch that dies is counted as failed, to be retried alone.
        dead_job_handlers.register(jobs.register_delivery.name, signup.begin_compensation)
        dead_job_handlers.register(jobs.grant_entitlement.name, signup.begin_compensation)
        dead_job_handlers.register(jobs.bill_batch.name, renewals.mark_batch_failed)
        finders.register("sign-ups", recovery.stuck_signups)
        finders.register("billing", recovery.stuck_billing)
