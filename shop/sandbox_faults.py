"""The ops page's fault switches: a small client of the sandbox's control API (`/_sandbox/faults`).

Used only where a sandbox is configured (settings.SANDBOX_URL); real payment, carrier and mail
services have no such switches.
"""

from __future__ import annotations

from typing import Any

import requests
from django.conf import settings

# The ops page re-renders every 1.5 s: a sandbox that does not answer must not hold it up for long.
TIMEOUT_SECONDS = 2.0

_session = requests.Session()
_session.trust_env = False  # the sandbox runs beside the shop: no proxy from the environment in between


class SandboxError(Exception):
    """The sandbox could not be reached, or refused the call."""


def configured() -> bool:
    return bool(settings.SANDBOX_URL)


def faults() -> dict[str, dict[str, Any]]:
    """Every service's fault settings, as the sandbox has them now."""
    return _call("GET", "/_sandbox/faults")


def set_outage(service: str, outage: bool) -> dict[str, Any]:
    """Switch a service's outage on or off; returns that service's fault settings afterwards."""
    return _call("PUT", f"/_sandbox/faults/{service}", {"outage": outage})


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    url = settings.SANDBOX_URL.rstrip("/") + path
    try:
        response = _session.request(method, url, json=body, timeout=TIMEOUT_SECONDS)
        response.raise_for_status()
        return response.json()
    except (requests.RequestException, ValueError) as exc:
        raise SandboxError(f"{method} {url}: {exc}") from exc
