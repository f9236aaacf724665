"""A real browser for the page tests: Debian's Chromium, driven by Playwright."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is missing: `make test` installs Debian's chromium package.")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes
    # between browser steps are plain synchronous calls and safe here.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield launched
        launched.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def browser_page(browser):
    page = browser.new_page()
    page.set_default_timeout(15_000)
    return page


def log_in(page, base_url: str, username: str, password: str = "leasehold") -> None:
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/")


# Screenshots of each page a browser test visits, for a person to look at: one folder per test under
# `artifacts/screenshots/` (LEASEHOLD_SCREENSHOTS overrides it; git ignores it).
SCREENSHOTS = os.environ.get("LEASEHOLD_SCREENSHOTS") or os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "artifacts", "screenshots"
)


@pytest.fixture
def screenshot(request):
    """`screenshot(page, "queue")` saves the whole page as `<test>/<nn>-queue.png` and returns the path."""
    folder = os.path.join(SCREENSHOTS, request.node.name.replace("/", "_"))
    shutil.rmtree(folder, ignore_errors=True)
    taken: list[str] = []

    def take(page, label: str) -> str:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{len(taken) + 1:02d}-{label}.png")
        page.screenshot(path=path, full_page=True)
        taken.append(path)
        return path

    return take
