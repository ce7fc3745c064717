"""Exceptions that carry a retry decision from services up to the base task."""


class TransientError(Exception):
    """Worth retrying later: timeouts, 5xx, refused connections, a key still in flight."""


class PermanentError(Exception):
    """Retrying cannot help (bad request, template bug): the job goes straight to dead letters."""
