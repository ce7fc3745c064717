from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        # What the lower layers call back (jobkit/registry.py): one registration each, here.
        from billing.owners import owners
        from jobkit.recovery import finders
        from notifications.reminders import handlers
        from orders import payments, recovery, reminders

        owners.register("order", payments)
        handlers.register("order", reminders)
        finders.register("orders", recovery.stuck_orders)
