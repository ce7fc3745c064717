"""Shipping: the carrier's HTTP API (shipments, recurring-delivery registrations) and our shipment records.

Below orders and subscriptions: it knows a shipment by the reference its caller gives it, never by an
order or a subscription.
"""
