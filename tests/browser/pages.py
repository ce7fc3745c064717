"""What a visitor does and looks at on the shop's pages, for the browser tests.

Playwright is imported inside the functions: without it the tests skip (or fail in CI) in conftest.py,
not at import.
"""

from __future__ import annotations

import re

from tests.harness import Stack

GOOD_CARD = "Visa ending 4242 (succeeds)"
DECLINED_CARD = "Visa ending 0002 (declined)"


def see(locator, text: str | re.Pattern[str] | list[str], stack: Stack, timeout: float = 30) -> None:
    """Wait until `locator` shows `text` (Playwright's to_have_text: the whole text, a pattern, or one text
    per element); pages with #live refresh themselves. On timeout, fail with the workers' last lines too."""
    from playwright.sync_api import expect

    try:
        expect(locator).to_have_text(text, timeout=timeout * 1000)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{stack.logs()}") from None


def status(page):
    """The status badge in the heading of an order or subscription page."""
    return page.locator("#live h1 .status")


def job_status(page, job: str):
    """The status of the job named `job` in the page's table of background jobs."""
    job_row = page.locator("#live tr").filter(has=page.get_by_role("cell", name=job, exact=True))
    return job_row.locator(".status")


def buy(page, email: str, card: str, product: str = "Earl Grey", quantity: int = 2) -> None:
    """From the catalogue to the order page: the product's page, the cart, the checkout."""
    page.goto("/")
    page.get_by_role("link", name=product).click()
    page.get_by_label("Quantity").fill(str(quantity))
    page.get_by_role("button", name="Add to cart").click()
    page.get_by_role("link", name="Checkout").click()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Payment method").select_option(label=card)
    page.get_by_role("button", name="Place order").click()
    page.wait_for_url("**/orders/*/")


def row(page, table_header: str, first_cell: str):
    """The row whose first cell reads `first_cell`, in the table with a column headed `table_header`."""
    table = page.locator("table").filter(has=page.get_by_role("columnheader", name=table_header, exact=True))
    return table.locator("tr").filter(has=page.get_by_role("cell", name=first_cell, exact=True))


def press(page, button) -> None:
    """Click a form's button and wait for the server's answer to its POST."""
    with page.expect_response(lambda response: response.request.method == "POST") as answer:
        button.click()
    assert answer.value.status == 302, f"{answer.value.status} {answer.value.url}"
