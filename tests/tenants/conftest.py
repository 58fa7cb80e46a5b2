from __future__ import annotations

# The browser tests' fixtures (chromium with and without JavaScript, any number of them).
from tests.browser.helpers import browser, no_js_browser, open_browser  # noqa: F401
