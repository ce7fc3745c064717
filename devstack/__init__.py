"""Run the whole shop locally: the demo runner and the process supervision it shares with the tests.

- `processes`: start, watch and stop the broker, the sandbox, Celery worker and beat, and the web server
  (used by `python manage.py demo`, the end-to-end test harness and the benchmarks).
- `runtime`: the project's local state folder (`var/`), the addresses a running demo publishes there
  (read by settings) and the development secrets kept there.
- `embedded_redis`: a Redis-protocol server in pure Python, for machines with no `redis-server`.
- `management/commands/demo.py`: `python manage.py demo` (the reason this package is a Django app).
"""
