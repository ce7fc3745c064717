"""The JSON API's shared pieces, below every app that serves an API (it knows no domain):
body parsing and its limits, the `{"errors": {field: [messages]}}` shape, binding JSON to the Django
forms that decide validity, Idempotency-Key handling (`IdempotencyRecord`), and common schemas."""
