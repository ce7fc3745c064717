"""The sandbox as a process: start-up, signals, persistence across a restart."""

from __future__ import annotations

import signal
import smtplib
from pathlib import Path

import pytest
import stripe

from sandbox.testing import SandboxError, SandboxProcess

VISA = {"amount": 3100, "currency": "eur", "payment_method": "pm_card_visa", "confirm": True}


def client_for(process: SandboxProcess, api_key: str) -> stripe.StripeClient:
    return stripe.StripeClient(api_key, base_addresses={"api": process.api_base}, max_network_retries=0)


def test_state_survives_a_restart(state_path: Path, api_key: str):
    first = SandboxProcess.start(
        state_path, webhook_url="http://127.0.0.1:9/hooks", webhook_secret="whsec_env"
    )
    try:
        intent = client_for(first, api_key).v1.payment_intents.create(VISA, {"idempotency_key": "survivor"})
        first.set_fault("carrier", reject_registrations=True)
        with smtplib.SMTP("127.0.0.1", first.smtp_port, timeout=5) as smtp:
            smtp.sendmail("shop@example.com", ["ada@example.com"], "Subject: kept\r\n\r\nhi\r\n")
    finally:
        assert first.stop() == 0

    second = SandboxProcess.start(state_path)
    try:
        client = client_for(second, api_key)
        assert client.v1.payment_intents.retrieve(intent.id).status == "succeeded"
        replay = client.v1.payment_intents.create(VISA, {"idempotency_key": "survivor"})
        assert replay.id == intent.id and replay.last_response.headers["Idempotent-Replayed"] == "true"
        assert second.faults()["carrier"]["reject_registrations"] is True
        assert [m["subject"] for m in second.mail_messages()] == ["kept"]
        assert second.stats()["payments"]["succeeded"] == 3  # create, retrieve, replay
        assert second.request("GET", "/_sandbox/webhooks")["secret"] == "whsec_env"
    finally:
        second.stop()


def test_prints_its_listeners_and_stops_cleanly_on_sigint(state_path: Path):
    process = SandboxProcess.start(state_path)
    assert f"http://127.0.0.1:{process.http_port}" in process.output
    assert f"127.0.0.1:{process.smtp_port}" in process.output
    process.process.send_signal(signal.SIGINT)
    assert process.process.wait(10) == 0
    process.stop()


def test_a_busy_port_fails_start_with_the_reason(sandbox: SandboxProcess, state_path: Path):
    with pytest.raises(SandboxError, match="cannot listen"):
        SandboxProcess.start(state_path, http_port=sandbox.http_port)
