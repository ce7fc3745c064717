"""Naive versions of the patterns, one module each: real Celery tasks of their own app (`app.py`), with
Celery's defaults, calling the same sandbox through the official stripe SDK. Each module's docstring says
which shape it copies and what goes wrong. Never imported by the shop."""
