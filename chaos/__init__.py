"""The fault campaign (`make chaos`, `python -m chaos`): the shop under load while workers are killed, the
broker is flushed and restarted and the outside services fail; then, with the faults stopped, the shop
must settle by itself and every business invariant must hold. docs/failure-handling.md describes it.
"""
