from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "subscriptions"

    def ready(self) -> None:
        from jobkit import recovery
        from subscriptions.recovery import stuck_billing, stuck_signups

        recovery.register("sign-ups", stuck_signups)
        recovery.register("billing", stuck_billing)
