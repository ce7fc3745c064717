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


class Deferred(Exception):
    """Not now, and not a failure: come back in `retry_after` seconds without spending a retry.

    For a call that must not happen yet (an open circuit breaker, a lease another worker holds): the
    base task sends the job again for then, with its retry count unchanged, up to a deadline.
    """

    def __init__(self, reason: str, retry_after: float):
        super().__init__(reason, retry_after)  # both in args: the exception survives pickling
        self.reason = reason
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.reason}: retry in {self.retry_after:.3f}s"
