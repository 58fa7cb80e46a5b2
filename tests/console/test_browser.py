"""The dashboard in real Chromium (issue 17, acceptance): the demo tenant's owner logs in,
lands on the dashboard, sees at least six charts drawn with data, and axe-core finds no
serious or critical accessibility violation on the page.

axe-core (MPL-2.0) is vendored, one file with its licence, in tests/browser/vendor/: the run
needs no network."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from apps.tenants.management.commands.seed_demo import DEMO_EMAIL, DEMO_PASSWORD
from tests.browser.helpers import SERIOUS, admin_log_in, axe_violations, open_chromium, wait

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

@pytest.fixture
def browser():
    driver = open_chromium(javascript=True, size=(1280, 1000))
    try:
        yield driver
    finally:
        driver.quit()


def _log_in(driver, base: str) -> None:
    from selenium.webdriver.common.by import By

    admin_log_in(driver, base, DEMO_EMAIL, DEMO_PASSWORD)
    wait(driver, lambda d: d.find_elements(By.ID, "console-dashboard"))


CHARTS_JS = """
return Array.from(document.querySelectorAll('canvas.chart')).map(c => {
  const chart = Chart.getChart(c);
  const values = chart ? chart.data.datasets.flatMap(d => d.data) : [];
  return {id: c.closest('figure').id, drawn: !!chart && c.width > 0,
          withData: values.some(v => v !== null && v !== 0)};
});
"""


def test_the_owner_sees_six_charts_with_data_and_no_serious_accessibility_issue(
        browser, live_server):
    call_command("seed_demo", base_url=live_server.url, stdout=io.StringIO(),
                 stderr=io.StringIO())
    _log_in(browser, live_server.url)
    charts = browser.execute_script(CHARTS_JS)
    drawn = [c for c in charts if c["drawn"] and c["withData"]]
    assert len(drawn) >= 6, charts
    # Every chart has a text alternative: its caption and a table of the same numbers.
    from selenium.webdriver.common.by import By

    for figure in browser.find_elements(By.CSS_SELECTOR, "figure.console-card"):
        assert figure.find_element(By.TAG_NAME, "figcaption").text.strip()
        assert figure.find_elements(By.CSS_SELECTOR, "table tbody tr")
    # Readable at 1280 px: no horizontal scrolling.
    assert browser.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth")
    # The running jobs list is live: the page fetched it from the JSON endpoint.
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 20).until(lambda d: d.execute_script(
        "return Number(document.getElementById('console-jobs').dataset.polled || 0) >= 1"))
    serious = axe_violations(browser, impacts=SERIOUS)
    assert serious == [], serious


OVERFLOW_JS = """
const wide = [];
if (document.documentElement.scrollWidth > window.innerWidth) wide.push('document');
for (const el of document.querySelectorAll('#content *')) {
  const style = getComputedStyle(el);
  if (['auto', 'scroll'].includes(style.overflowX) && el.scrollWidth > el.clientWidth + 2)
    wide.push((el.id || el.tagName) + ' ' + el.scrollWidth + '>' + el.clientWidth);
}
return wide;
"""


def test_every_list_and_detail_page_fits_1280_px(browser, live_server):
    """Readable at 1280 px: no page of the sidebar scrolls sideways, nor any table in it."""
    from selenium.webdriver.common.by import By

    call_command("seed_demo", base_url=live_server.url, stdout=io.StringIO(),
                 stderr=io.StringIO())
    _log_in(browser, live_server.url)
    links = [a.get_attribute("href") for a in
             browser.find_elements(By.CSS_SELECTOR, "#nav-sidebar-inner a[href*='/admin/']")]
    pages = sorted({link for link in links if link.rstrip("/").count("/") >= 5})
    assert len(pages) >= 20
    problems = {}
    for page in pages:
        browser.get(page)
        wide = browser.execute_script(OVERFLOW_JS)
        if wide:
            problems[page] = wide
        # The first row's detail page, too.
        rows = browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr a[href*='/change/']")
        if rows:
            detail = rows[0].get_attribute("href")
            browser.get(detail)
            wide = browser.execute_script(OVERFLOW_JS)
            if wide:
                problems[detail] = wide
    assert problems == {}, "\n".join(f"{p}: {w}" for p, w in problems.items())
