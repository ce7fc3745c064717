"""Exceptions that carry a retry decision from services up to the base task."""


class TransientError(Exception):
    """Worth retrying later: timeouts, 5xx, refused connections, a key still in flight.

    `outage=False` marks a transient condition that says nothing about the service's health (another
    worker holds the same idempotency key, say), so it does not count towards opening a circuit breaker.
    """

    def __init__(self, message: str, *, outage: bool = True):
        super().__init__(message)
        self.outage = outage


class PermanentError(Exception):
    """Retrying cannot help (bad request, template bug): the job goes straight to dead letters."""


def is_outage(exc: BaseException) -> bool:
    """What a circuit breaker counts as a failure of the service."""
    return isinstance(exc, TransientError) and exc.outage
