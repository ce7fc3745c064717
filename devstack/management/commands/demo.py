"""python manage.py demo: migrate, seed, then run and supervise the whole shop on one machine."""

from __future__ import annotations

import os
import secrets
import signal
import sys
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from devstack import processes
from devstack.runtime import VAR_DIR, clear_runtime, read_runtime, write_runtime
from envconfig import env_int, env_str
from shop.factories import seed_catalogue, seed_plans

STAFF_USERNAME = "staff"
# Recovery you can watch: a killed worker's message comes back in ~2 minutes instead of Celery's hour
# (still longer than the 90 s hard time limit, so a slow job is never handed out twice), and the recovery
# sweep moves on work whose messages were lost after 3 minutes. Environment variables override these.
DEMO_TIMINGS = {
    "CELERY_VISIBILITY_TIMEOUT": "120",
    "CELERY_UNACKED_RESTORE_INTERVAL": "5",
    "CELERY_UNACKED_RESTORE_THROTTLE": "1",
    "SWEEP_STUCK_AFTER_SECONDS": "180",
    # Retries at most a minute apart: every countdown must stay below the visibility timeout (checked in
    # shop/settings.py), or Redis hands the waiting message out again.
    "JOB_RETRY_BACKOFF_MAX_SECONDS": "60",
    # Due reminders are looked for every 10 s (not 60), so one shows up soon after the clock moves.
    "REMINDER_INTERVAL_SECONDS": "10",
}


class Command(BaseCommand):
    help = "Run the demo shop: broker, sandbox, Celery worker and beat, and the web server."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--port", type=int, default=env_int("PORT", 8000), help="web port")
        parser.add_argument("--concurrency", type=int, default=2, help="worker processes")

    def handle(self, *args: Any, port: int, concurrency: int, **options: Any) -> None:
        running = read_runtime()
        if running:
            raise CommandError(f"A demo is already running (pid {running['pid']}): {running.get('web_url')}")
        if not processes.port_is_free(port):
            raise CommandError(f"Port {port} is in use; stop what uses it or run with PORT=<another port>.")
        log_dir = VAR_DIR / "log"
        refuse_a_database_of_an_older_layout()
        call_command("migrate", interactive=False, verbosity=0)
        seed_catalogue()
        seed_plans()
        password = self.reset_staff_password()

        stopping = False

        def request_stop(signum: int, _frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

        backing: list[processes.Child] = []  # broker and sandbox: stopped last
        shop: list[processes.Child] = []  # worker, beat, web
        try:
            redis_url = env_str("REDIS_URL")
            if not redis_url:
                redis_child, redis_url = processes.start_redis(log_dir, processes.free_port())
                backing.append(redis_child)
            sandbox_port = processes.port_or_free(settings.SANDBOX_PORT)
            smtp_port = processes.port_or_free(settings.SANDBOX_SMTP_PORT)
            web_url = f"http://{processes.HOST}:{port}"
            sandbox = processes.start_sandbox(
                log_dir,
                VAR_DIR / "sandbox.sqlite3",
                sandbox_port,
                smtp_port,
                webhook_url=f"{web_url}/webhooks/stripe",  # signed events back to the shop
                webhook_secret=settings.STRIPE_WEBHOOK_SECRET,
            )
            backing.append(sandbox)
            write_runtime(
                {
                    "pid": os.getpid(),
                    "redis_url": redis_url,
                    "sandbox_port": sandbox_port,
                    "sandbox_smtp_port": smtp_port,
                    "web_url": web_url,
                }
            )
            env = processes.base_env(
                REDIS_URL=redis_url, SANDBOX_PORT=str(sandbox_port), SANDBOX_SMTP_PORT=str(smtp_port)
            )
            for name, value in DEMO_TIMINGS.items():
                env.setdefault(name, value)
            shop.append(processes.start_worker(log_dir, env, concurrency=concurrency, echo=sys.stdout))
            shop.append(processes.start_beat(log_dir, env, VAR_DIR / "celerybeat-schedule", echo=sys.stdout))
            shop.append(processes.start_web(log_dir, env, port))
            self.print_banner(web_url, sandbox_port, smtp_port, redis_url, password)
            while not stopping:
                for child in backing + shop:
                    if not child.alive() and not stopping:
                        self.stdout.write(self.style.WARNING(f"{child.name} exited; restarting it"))
                        child.start()
                time.sleep(0.5)
        finally:
            self.stdout.write(
                f"Stopping the demo: the worker finishes the jobs it is running "
                f"(up to {processes.STOP_TIMEOUT_SECONDS:.0f} s, then they are killed)..."
            )
            processes.stop_all(shop)
            processes.stop_all(backing)
            clear_runtime()
            self.stdout.write("Stopped: no process left running.")

    def reset_staff_password(self) -> str:
        """A fresh random staff password each run, printed on screen and never stored in the repo."""
        password = secrets.token_urlsafe(12)
        user, _ = get_user_model().objects.get_or_create(
            username=STAFF_USERNAME,
            defaults={"is_staff": True, "is_superuser": True, "email": "staff@example.com"},
        )
        user.is_staff = user.is_superuser = True
        user.set_password(password)
        user.save()
        return password

    def print_banner(
        self, web_url: str, sandbox_port: int, smtp_port: int, redis_url: str, password: str
    ) -> None:
        sandbox = f"http://{processes.HOST}:{sandbox_port}"
        lines = [
            "",
            "Job Shop demo is running. Ctrl-C stops everything.",
            f"  Shop           {web_url}/",
            f"  Admin          {web_url}/admin/   (user {STAFF_USERNAME!r}, password {password!r})",
            f"  API            {web_url}/api/docs   (OpenAPI document: {web_url}/api/openapi.json)",
            f"  Health         {web_url}/healthz",
            f"  Sandbox        {sandbox}/_sandbox/faults",
            f"                 payments {sandbox}/v1, carrier {sandbox}/carrier/v1",
            f"  Mail catcher   {sandbox}/_sandbox/mail/messages   (SMTP {processes.HOST}:{smtp_port})",
            f"  Broker         {redis_url}",
            f"  Logs           {VAR_DIR / 'log'}",
            "",
        ]
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))


def refuse_a_database_of_an_older_layout() -> None:
    """The apps' migrations were started afresh when billing stopped pointing at orders and subscriptions:
    a demo database made before that has applied migrations that no longer exist. Say how to start over
    instead of failing half-way through `migrate`."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(connection, ignore_no_migrations=True)
    gone = sorted(
        f"{app}.{name}"
        for app, name in loader.applied_migrations
        if app in {"billing", "orders", "subscriptions", "shop"} and (app, name) not in loader.disk_migrations
    )
    if gone:
        where = connection.settings_dict["NAME"]
        raise CommandError(
            f"The database {where} was made by an older version of the shop (migrations {', '.join(gone)} "
            "no longer exist). Demo data is disposable: delete it (for the default SQLite file: "
            "rm var/shop.sqlite3*) and run make demo again."
        )
