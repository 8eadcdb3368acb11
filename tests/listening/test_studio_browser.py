"""The keyword studio in Chromium: the preview follows the query as the admin types."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import log_in
from tests.factories import make_mention

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_preview_count_follows_the_query_as_it_is_typed(
    browser, live_server, brand, admin_user
):
    make_mention(brand=brand, text="The latte art today was lovely")
    make_mention(brand=brand, text="Latte, too sweet")
    make_mention(brand=brand, text="espresso only")
    page = log_in(browser, live_server.url, "adam")
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.goto("/listening/keywords/")

    page.get_by_label("Brand").select_option(label="Northwind Coffee")
    expect(page.locator("#preview-problem")).to_contain_text("Enter what to listen for")
    query = page.get_by_label("Query")
    query.press_sequentially("latte", delay=30)
    expect(page.locator("#preview-matched")).to_have_text("2")
    expect(page.locator("#preview-count")).to_contain_text("of the 3 stored mentions")
    query.press_sequentially(" art", delay=30)
    expect(page.locator("#preview-matched")).to_have_text("1")
    expect(page.locator(".preview-matches")).to_contain_text("The latte art today was lovely")
    query.press_sequentially(" OR", delay=30)
    expect(page.locator("#preview-problem")).to_contain_text("OR needs a term on both sides")
    query.press_sequentially(" espresso", delay=30)
    expect(page.locator("#preview-matched")).to_have_text("2")

    # All of it in place: the page itself was never reloaded, and the CSP refused nothing.
    assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
    assert errors == []
