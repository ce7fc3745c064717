"""Browser end-to-end tests: headless Chromium, driven by Playwright, against the shop served by gunicorn
(as `make demo` serves it) on the test stack's database, broker, sandbox and worker.

Without Chromium or Playwright they skip, saying how to install them. They fail instead where CI is set
(any non-blank value), and where the tour's screenshots are asked for: `--tour-screenshots DIR` (an option
of tests/conftest.py; `make tour`) saves the screenshots docs/tour.md shows.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from devstack import processes
from envconfig import env_str
from tests.harness import Stack

VIEWPORT = {"width": 1100, "height": 900}
STAFF_PASSWORD = "browser-test-only"
# What the staff user may do on /ops/: switch the sandbox's faults, move the clock, start a billing run.
OPS_PERMISSIONS = [
    ("shop", "switch_sandbox_faults"),
    ("shop", "advance_clock"),
    ("subscriptions", "add_billingrun"),
]


def unavailable(reason: str, config: pytest.Config) -> NoReturn:
    """Skip a local run that lacks a browser; fail in CI, which must run these tests, and when asked for
    the tour's screenshots."""
    if env_str("CI"):
        pytest.fail(f"{reason} (CI is set: the browser tests must run, not skip)", pytrace=False)
    if config.getoption("--tour-screenshots") is not None:
        pytest.fail(f"{reason} (needed for the tour's screenshots)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="package")
def shop_url(stack: Stack, log_dir: Path) -> Iterator[str]:
    """The shop on gunicorn, started as `make demo` starts it, with the stack's environment.

    Stopped with the browser tests: its relay sends every `unsent` row of the test database, so one left
    running would send the rows later tests stage on purpose (tests/test_relay.py, test_recovery.py)."""
    port = processes.free_port()
    web = processes.start_web(log_dir, stack.env, port)
    yield f"http://{processes.HOST}:{port}"
    web.stop()


@pytest.fixture(scope="session", autouse=True)
def chromium_executable(pytestconfig: pytest.Config) -> str:
    """Debian's Chromium (not Playwright's own download), looked for before any service starts."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        unavailable("Playwright is not installed: pip install -r requirements.lock", pytestconfig)
    executable = shutil.which("chromium")
    if executable is None:
        unavailable("Chromium is not installed: apt-get install chromium (Debian/Ubuntu)", pytestconfig)
    return executable


@pytest.fixture
def browser(chromium_executable: str, e2e: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Headless Chromium for one test."""
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an asyncio loop running in this thread, and Django refuses ORM calls
    # while one runs. The fixtures' ORM calls here are plain synchronous ones: allowed, while the browser is.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_executable, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser, shop_url: str):
    """new_page() -> a page in a browser context of its own (its own cookies: one visitor each)."""

    def new() -> object:
        context = browser.new_context(base_url=shop_url, viewport=VIEWPORT)
        context.set_default_timeout(10_000)
        return context.new_page()

    return new


@pytest.fixture
def page(new_page):
    """A customer's page."""
    return new_page()


@pytest.fixture
def staff_page(new_page):
    """A page logged in through /admin/login/ as a staff user (not a superuser) with the ops permissions."""
    user = get_user_model().objects.create_user("ops", "ops@example.com", STAFF_PASSWORD, is_staff=True)
    user.user_permissions.add(
        *(Permission.objects.get(content_type__app_label=app, codename=code) for app, code in OPS_PERMISSIONS)
    )
    staff = new_page()
    staff.goto("/admin/login/?next=/ops/")
    staff.get_by_label("Username").fill("ops")
    staff.get_by_label("Password").fill(STAFF_PASSWORD)
    staff.get_by_role("button", name="Log in").click()
    staff.get_by_role("heading", name="Ops", exact=True).wait_for()
    return staff


@pytest.fixture
def screenshot(request: pytest.FixtureRequest):
    """screenshot(page, name, at=None): with --tour-screenshots DIR, the page's viewport as DIR/name.png,
    scrolled so that the element `at` is at the top."""
    folder = request.config.getoption("--tour-screenshots")

    def take(page, name: str, at=None) -> None:
        if folder is None:
            return
        if at is not None:
            at.evaluate("element => element.scrollIntoView()")
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=folder / f"{name}.png")

    return take
