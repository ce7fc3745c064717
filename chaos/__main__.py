"""python -m chaos: a fault campaign against a shop stack of its own, judged by business invariants.

    python -m chaos [--seed N] [--orders 500] [--signups 200] [--subscriptions 2000] [--kills 10]
                    [--progress-file PATH]

Prints its seed first: the same seed and sizes replay the same schedule of faults and requests. Exits 1
when an invariant is violated or the shop did not settle. docs/failure-handling.md explains the report.
"""

from __future__ import annotations

import argparse
import functools
import random
import sys
from dataclasses import asdict
from pathlib import Path

from chaos import environment
from chaos.progress import Progress
from chaos.schedule import Sizes
from devstack import processes
from envconfig import env_str

DEFAULTS = Sizes(orders=500, signups=200, subscriptions=2000, kills=10)


def parse(argv: list[str] | None) -> tuple[int, Sizes, Path | None]:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, help="replay a campaign (default: a random seed, printed)")
    parser.add_argument("--orders", type=int, default=DEFAULTS.orders, help="orders through the API")
    parser.add_argument("--signups", type=int, default=DEFAULTS.signups, help="sign-ups through the API")
    parser.add_argument(
        "--subscriptions", type=int, default=DEFAULTS.subscriptions, help="due subscriptions billed"
    )
    parser.add_argument("--kills", type=int, default=DEFAULTS.kills, help="workers killed at random moments")
    parser.add_argument(
        "--progress-file", type=Path, help="keep the campaign's progress there as JSON (chaos/progress.py)"
    )
    args = parser.parse_args(argv)
    if min(args.orders, args.signups, args.subscriptions, args.kills) < 0:
        parser.error("sizes must not be negative")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    return seed, Sizes(args.orders, args.signups, args.subscriptions, args.kills), args.progress_file


def main(argv: list[str] | None = None) -> int:
    seed, sizes, progress_file = parse(argv)
    replay = (
        f"python -m chaos --seed {seed} --orders {sizes.orders} --signups {sizes.signups} "
        f"--subscriptions {sizes.subscriptions} --kills {sizes.kills}"
    )
    print(f"chaos: seed {seed} (replay: {replay})", flush=True)
    progress = Progress(progress_file)
    progress.phase("starting", seed=seed, sizes=asdict(sizes), replay=replay)
    try:
        return run(seed, sizes, progress)
    except BaseException as exc:  # an error or Ctrl-C: else the panel shows a phase that never ends
        progress.fail(f"{type(exc).__name__}: {exc}")
        raise


def run(seed: int, sizes: Sizes, progress: Progress) -> int:
    folder = environment.workdir()
    database = environment.create_database(folder)
    given_redis = env_str("REDIS_URL")
    ports = environment.Ports(*(processes.free_port() for _ in range(4)))
    redis_url = given_redis or f"redis://{processes.HOST}:{ports.redis}/0"
    env = environment.apply(folder, database, ports, redis_url)

    import django

    django.setup()
    # Django loaded only now, with the campaign's environment.
    import redis
    from django.core.management import call_command
    from django.db import connections

    from chaos import report
    from chaos.campaign import Campaign
    from chaos.stack import ChaosStack

    db_kind = "PostgreSQL" if database.postgres else "SQLite"
    print(f"database {database.name} ({db_kind}); logs in {folder / 'log'}", flush=True)
    call_command("migrate", interactive=False, verbosity=0)
    if given_redis:
        redis.Redis.from_url(given_redis).flushdb()  # as the test suite does: the database is the run's
    stack = ChaosStack(folder, env, ports, database, redis_url, own_redis=not given_redis)
    try:
        stack.start()
        say = functools.partial(print, flush=True)
        outcome = Campaign(seed, sizes, stack, say=say, progress=progress).run()
    finally:
        stack.stop()
    print()
    print(report.render(seed, sizes, outcome))
    progress.finish(outcome.rows, report.notes(outcome), report.figures(seed, sizes, outcome), outcome.ok)
    connections.close_all()
    if database.postgres and outcome.ok:
        database.drop()
    elif database.postgres:
        print(f"kept database {database.name} for inspection; drop it when done: dropdb {database.name}")
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
