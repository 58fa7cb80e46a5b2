"""What every browser test shares (Debian's chromium + chromedriver, driven by selenium): the
browser itself and its fixtures, waiting for the next page, axe-core, and logging in to the
admin. One place, so that a fix (a flag, a race, axe's options) reaches every test.

* :func:`open_chromium` / the fixtures ``browser``, ``no_js_browser`` and ``open_browser``
  (any number of browsers, with or without JavaScript, a language, a window size). Skipped,
  with the reason, when chromium, chromedriver or selenium is missing, unless
  ``DISCREET_REQUIRE_BROWSER=1`` (CI), which turns the skip into a failure.
* :func:`submit`: click and wait until the next page replaced this one.
* :func:`axe_run` (axe-core, vendored: ``tests/browser/vendor/axe.min.js``, 4.14.1, MPL-2.0,
  no network), :func:`axe_violations` (readable lines) and :data:`SERIOUS`.
* :func:`admin_log_in`: the admin's login form, waiting for the login to land (else the next
  ``get`` can race it back to the login page).

A test module imports the fixtures it uses from here (pytest finds them in its namespace),
or a ``conftest.py`` does for its directory."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path(shutil.which("chromedriver") or "/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--window-size=1200,900")
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
#: The impacts a test of the admin's pages holds to (the theme's own minor issues aside).
SERIOUS = frozenset({"serious", "critical"})


# --- The browser -----------------------------------------------------------------------------


def _unavailable(reason: str) -> None:
    if os.environ.get("DISCREET_REQUIRE_BROWSER") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def open_chromium(*, javascript: bool = True, language: str | None = None,
                  size: tuple[int, int] | None = None) -> Any:
    """A headless chromium; ``language``: the one it asks for first (``Accept-Language``);
    ``size``: the window's, in CSS pixels. The caller quits it (the fixtures do)."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        _unavailable("needs Debian's chromium and chromium-driver (apt-get install -y "
                     "chromium chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    if language is not None:
        options.add_argument(f"--lang={language}")
        options.add_argument(f"--accept-lang={language}")
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    if size is not None:
        driver.set_window_size(*size)
    return driver


@pytest.fixture
def open_browser() -> Iterator[Callable[..., Any]]:
    """``open_browser(javascript=..., language=..., size=...)`` (:func:`open_chromium`);
    every browser opened is closed after the test."""
    opened: list[Any] = []

    def start(**options: Any) -> Any:
        opened.append(open_chromium(**options))
        return opened[-1]

    yield start
    for driver in opened:
        driver.quit()


@pytest.fixture
def browser(open_browser) -> Any:
    return open_browser(javascript=True)


@pytest.fixture
def no_js_browser(open_browser) -> Any:
    return open_browser(javascript=False)


# --- Pages -----------------------------------------------------------------------------------


def by(kind: str) -> str:
    """selenium's ``By.<kind>`` (selenium is imported only when a browser runs)."""
    from selenium.webdriver.common.by import By

    return getattr(By, kind)


def wait(driver: Any, predicate: Callable[[Any], Any], timeout: float = 60) -> Any:
    """``predicate(driver)`` once it is truthy, polling; a WebDriver error while the page
    changes counts as "not yet"."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(WebDriverException,)).until(predicate)


def submit(driver: Any, selector: str = "main button[type=submit]", how: str = "CSS_SELECTOR",
           *, loaded: str = "footer", timeout: float = 60) -> None:
    """Click and wait until the next page replaced this one and shows ``loaded`` (a CSS
    selector; ``""``: until the document is complete). While the old page is torn down,
    ChromeDriver may answer a probe of it with "unhandled inspector error" (its context is
    gone) rather than a stale element: that counts as "not yet" (seen once in CI)."""
    from selenium.webdriver.support import expected_conditions

    page = driver.find_element(by("TAG_NAME"), "html")
    driver.find_element(by(how), selector).click()
    wait(driver, expected_conditions.staleness_of(page), timeout)
    if loaded:
        wait(driver, lambda d: d.find_elements(by("CSS_SELECTOR"), loaded), timeout)
    else:
        wait(driver, lambda d: d.execute_script("return document.readyState") == "complete",
             timeout)


def admin_log_in(driver: Any, base: str, username: str, password: str, *,
                 next_path: str = "/admin/") -> None:
    """Log in to the admin at ``base`` (the live server's URL) from a clean browser, and
    wait for the login to land on ``next_path``."""
    if driver.current_url.startswith("http"):
        driver.delete_all_cookies()  # another user's session (a fresh browser has none)
    driver.get(f"{base}/admin/login/?next={next_path}")
    driver.find_element(by("NAME"), "username").send_keys(username)
    driver.find_element(by("NAME"), "password").send_keys(password)
    submit(driver, "#login-form [type=submit]", loaded="")
    assert "/admin/login/" not in driver.current_url, driver.page_source[:2000]


# --- axe-core --------------------------------------------------------------------------------

_RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ['violations']})
   .then(r => done(r.violations.map(v => ({
       id: v.id, impact: v.impact, help: v.help, count: v.nodes.length,
       targets: v.nodes.slice(0, 3).map(n => n.target.join(' ')),
       html: v.nodes.slice(0, 3).map(n => n.html)}))))
   .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), count: 0,
                      targets: [], html: []}]));
"""


def axe_run(driver: Any, *, rules_off: Iterable[str] = ()) -> list[dict[str, Any]]:
    """axe-core's violations on the page as rendered, each ``{id, impact, help, count,
    targets, html}`` (the first three nodes); a failure of axe itself is one critical
    ``axe-error``. ``rules_off``: rule ids left out of the answer."""
    driver.execute_script(AXE.read_text(encoding="utf-8"))
    driver.set_script_timeout(60)
    off = set(rules_off)
    return [v for v in driver.execute_async_script(_RUN_AXE) if v["id"] not in off]


def axe_violations(driver: Any, *, impacts: Iterable[str] | None = None,
                   rules_off: Iterable[str] = ()) -> list[str]:
    """The violations as readable lines, ``"<rule id> (<impact>): <help> — <nodes>"``;
    ``impacts``: only those (e.g. :data:`SERIOUS`), all by default."""
    wanted = None if impacts is None else set(impacts)
    return [f"{v['id']} ({v['impact']}): {v['help']} — {v['count']} node(s): {v['targets']}"
            for v in axe_run(driver, rules_off=rules_off)
            if wanted is None or v["impact"] in wanted]
