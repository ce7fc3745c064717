"""Cross-cutting job machinery, written once and used by every app.

- `tasks.ShopTask`: the base task (retry policy, job timeline recording).
- `enqueue.enqueue_on_commit`: send a job only after the current transaction commits.
- `errors`: the exceptions that tell the base task whether to retry.
"""
