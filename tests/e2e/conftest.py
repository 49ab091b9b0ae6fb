"""Browser fixtures: Debian's Chromium driven by Playwright, against the live aigw server."""

from __future__ import annotations

import os

import pytest
from django.db import connections
from playwright.sync_api import sync_playwright

CHROMIUM = os.environ.get("AIGW_CHROMIUM", "/usr/bin/chromium")
# No GPU, no sandbox (root), and none of Chromium's background calls to the closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# Every browser test fails on a Content-Security-Policy violation: Chromium logs refusals to the
# console, and this script (run before the page's own, outside the CSP) logs each
# `securitypolicyviolation` event there too, with the directive and what it blocked.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error("Content Security Policy violation: " + event.violatedDirective + " blocked " +
    (event.blockedURI || "inline") + " at " + event.sourceFile + ":" + event.lineNumber);
});
"""


def _note_csp_violation(text: str, violations: list[str]) -> None:
    if "Content Security Policy" in text:
        violations.append(text)


@pytest.fixture
def page(live, monkeypatch):
    """A signed-out browser tab on the live server (relative URLs resolve against it)."""
    # Playwright's sync API runs an event loop in this thread; the test still reads the database
    # between browser steps, which Django would otherwise refuse as "async unsafe".
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(
            base_url=live.url,
            viewport={"width": 1280, "height": 860},
            permissions=["clipboard-read", "clipboard-write"],
        )
        violations: list[str] = []
        context.add_init_script(REPORT_CSP_VIOLATIONS)
        context.on("console", lambda message: _note_csp_violation(message.text, violations))
        yield context.new_page()
        context.close()
        browser.close()
        # Queries made while Playwright's loop ran used a connection of that async context;
        # close it here, in the same context, or the test database cannot be dropped.
        connections.close_all()
    assert not violations, "the page broke its Content-Security-Policy:\n" + "\n".join(violations)
