"""The outside world, with faults: a Stripe-compatible API, a carrier API, an SMTP catcher and a control API.

Run it with `python -m sandbox`; drive it from tests with `sandbox.testing.SandboxProcess`. Standard
library only, so it starts fast and runs anywhere the shop's interpreter does.
"""
