from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"

    def ready(self) -> None:
        from jobkit import recovery
        from orders.recovery import stuck_orders

        recovery.register("orders", stuck_orders)
