"""The Prefect UI in a real browser: Debian's Chromium driven by Playwright, as a person clicks it.

Every page a test looks at is saved as a screenshot under ``test-output/screenshots`` (or
``$ROLLOUT_SCREENSHOTS``), so a failing run shows what the user saw.
"""

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Locator, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.prefect_server import ROOT

SCREENSHOTS = Path(os.environ.get("ROLLOUT_SCREENSHOTS", ROOT / "test-output" / "screenshots"))


def chromium() -> str:
    """Debian's Chromium (`make setup` installs it); Playwright's own download is not used."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise AssertionError("chromium is not installed: `make setup` installs it from Debian")
    return found


@dataclass
class Browser:
    """A logged-in page of the Prefect UI served at ``base``."""

    page: Page
    base: str
    failures: list[str] = field(default_factory=list)
    """Every API call the UI made that failed (status and address), for the assertion messages."""

    def open(self, path: str) -> None:
        """Go to ``path`` of the UI and let it load."""
        self.page.goto(f"{self.base}{path}")
        self.page.wait_for_load_state("networkidle")

    def shot(self, name: str) -> Path:
        """Save the whole page as ``<name>.png``; returns its path."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=path, full_page=True)
        return path

    def shot_of(self, element: Locator, name: str) -> Path:
        """Save ``element`` alone (scrolled into view) as ``<name>.png``; returns its path."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        element.scroll_into_view_if_needed()
        element.screenshot(path=path)
        return path

    def submit(self, shot: str) -> None:
        """Submit the page's form and wait until the UI leaves it; what it said if it stays."""
        form_url = self.page.url
        self.page.get_by_role("button", name="Submit").click()
        try:
            self.page.wait_for_url(lambda url: url != form_url)
        except PlaywrightTimeout:
            toasts = self.page.locator(".p-toast").all_inner_texts()
            said = f"{toasts}; failed calls: {self.failures[-5:]}"
            raise AssertionError(f"the form was not submitted ({self.shot(shot)}): {said}") from None

    def field(self, within: Locator | Page, label: str) -> Locator:
        """A schema form's property whose label is ``label`` (e.g. ``plan_yaml``, ``Decision``)."""
        label_pattern = re.compile(rf"^{re.escape(label)}( \(Optional\))?$")
        return within.locator(".schema-form-property").filter(
            has=self.page.locator(".schema-form-property__label", has_text=label_pattern)
        )

    def choose(self, within: Locator | Page, label: str, option: str) -> list[str]:
        """Open the dropdown ``label`` and pick ``option``; returns every option it listed."""
        # Its chevron opens it: a click on the value itself does not, in Prefect 3.8.8's UI.
        self.field(within, label).locator(".p-select-button__icon").click()
        options = self.page.locator(".p-select-option")
        options.first.wait_for()
        listed = [text.strip() for text in options.all_inner_texts()]
        options.filter(has_text=re.compile(rf"^\s*{re.escape(option)}\s*$")).first.click()
        return listed


@contextmanager
def browser(base: str, auth: tuple[str, str]) -> Iterator[Browser]:
    """Chromium on the UI at ``base``, logged in with the server's basic-auth string."""
    with sync_playwright() as playwright:
        chrome = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = chrome.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            page.goto(f"{base}/login")
            page.locator("input").first.fill(":".join(auth))
            page.keyboard.press("Enter")
            page.wait_for_url(re.compile(r".*/dashboard.*"))
            opened = Browser(page, base)
            page.on(
                "response",
                lambda r: (
                    opened.failures.append(f"{r.status} {r.request.method} {r.url}")
                    if r.status >= 400
                    else None
                ),
            )
            yield opened
        finally:
            chrome.close()
