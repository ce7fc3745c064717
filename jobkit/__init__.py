"""Cross-cutting job machinery, written once and used by every app; it knows no domain.

- `tasks.JobTask`: the base task (retry policy, deferrals, job timeline, dead-job handlers).
- `enqueue.enqueue_on_commit`: send a job only after the current transaction commits.
- `errors`: the exceptions that tell the base task whether to retry, defer or give up.
- `outside`: one classification of outside errors, each call under its service's circuit breaker.
- `breaker`: the circuit breaker shared by every process (pattern 6).
- `recovery`: the sweep that re-enqueues work whose messages were lost.
- `registry`: the one way a lower layer calls back up.
- `unique`, `dead_letters`, `crash`, `broker`: unique execution, re-enqueue, test hooks, broker reads.
- `rows.update_rows`: many rows written in one statement (a billing batch's recording).
"""
