"""The tenant console in a real browser (Debian's chromium + chromedriver, selenium), issue
17 items 4 and 5: an owner invites a colleague, who accepts from the email and logs in with
their role; "Train now" shows the run's progress moving (PostgreSQL + the real worker);
the inspector shows ``demo-user-0003``'s recommendations in the demo tenant."""

from __future__ import annotations

import io
import re

import pytest
from django.core import mail
from django.core.management import call_command

from apps.audit.models import AuditEvent
from apps.modeling.models import ModelVersion, TrainingRun
from apps.tenants.models import Membership, Tenant
from tests.browser.helpers import SERIOUS, admin_log_in, axe_violations, submit, wait
from tests.factories.modeling import FAST_SETTINGS, configure, planted_dataset
from tests.factories.tenants import MembershipFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OWNER_PASSWORD = "owner-passphrase-for-tests-7"
NEW_PASSWORD = "colleague-passphrase-for-tests-3"


def _css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, selector)


def _submit(driver, selector="form button[type=submit], form input[type=submit]"):
    submit(driver, selector, loaded="")


def test_an_owner_invites_a_colleague_who_logs_in_with_their_role(browser, live_server):
    tenant = TenantFactory(name="Console Books")
    owner = UserFactory(username="boss@console.example", password=OWNER_PASSWORD)
    MembershipFactory(tenant=tenant, user=owner, role=Membership.Role.OWNER)
    base = live_server.url
    admin_log_in(browser, base, "boss@console.example", OWNER_PASSWORD)
    browser.get(f"{base}/admin/tenants/invitation/add/")
    _css(browser, "#id_email").send_keys("analyst@console.example")
    from selenium.webdriver.support.ui import Select

    Select(_css(browser, "#id_role")).select_by_value("analyst")
    _submit(browser, "input[name=_save], button[name=_save]")
    assert "analyst@console.example" in browser.page_source

    message = mail.outbox[-1]
    assert message.to == ["analyst@console.example"]
    link = re.search(r"(http://\S+/invitations/\S+/)", message.body).group(1)
    assert link.startswith(base)
    browser.delete_all_cookies()
    browser.get(link)
    assert "Console Books" in browser.page_source
    assert _css(browser, "#invitation-role").text == "Analyst"
    _css(browser, "#id_password1").send_keys(NEW_PASSWORD)
    _css(browser, "#id_password2").send_keys(NEW_PASSWORD)
    _submit(browser, "#accept")
    assert "/admin/login/" in browser.current_url

    admin_log_in(browser, base, "analyst@console.example", NEW_PASSWORD)
    membership = Membership.objects.for_tenant(tenant).get(
        user__username="analyst@console.example")
    assert membership.role == Membership.Role.ANALYST
    # An analyst reads but may not train or invite.
    browser.get(f"{base}/admin/modeling/trainingrun/")
    assert "Training runs" in browser.page_source or "training run" in browser.page_source
    assert not browser.find_elements("css selector", "#train-now-link")
    browser.get(f"{base}/admin/tenants/invitation/add/")
    assert "403" in browser.title or "Forbidden" in browser.page_source
    # The link was single-use.
    browser.get(link)
    assert "not valid any more" in browser.page_source


@pytest.mark.integration
def test_train_now_shows_the_progress_moving(browser, live_server, live_worker):
    tenant = TenantFactory(name="Training Books")
    owner = UserFactory(username="trainer@console.example", password=OWNER_PASSWORD)
    MembershipFactory(tenant=tenant, user=owner, role=Membership.Role.OWNER)
    # Enough iterations that the fit is seen running (as the worker kill test does).
    configure(tenant, model_algorithms=["als"], model_factors=128, model_iterations=3000)
    planted_dataset(tenant, groups=4, items_per_group=12, subjects_per_group=10,
                    per_subject=7)
    base = live_server.url
    admin_log_in(browser, base, "trainer@console.example", OWNER_PASSWORD)
    browser.get(f"{base}/admin/modeling/trainingrun/")
    _css(browser, "#train-now-link").click()
    wait(browser, lambda d: d.find_elements("css selector", "#train-now"))
    _submit(browser, "#train-now")
    run = TrainingRun.objects.for_tenant(tenant).get()
    assert browser.current_url.endswith(f"/admin/modeling/trainingrun/{run.pk}/change/")

    seen: list[tuple[str, str]] = []

    def progressed(driver) -> bool:
        state = (_css(driver, "#training-status").text, _css(driver, "#training-percent").text)
        if not seen or seen[-1] != state:
            seen.append(state)
        return state[0] in {"succeeded", "failed"}

    wait(browser, progressed, timeout=300)
    assert seen[-1] == ("succeeded", "100"), (seen, TrainingRun.objects.for_tenant(
        tenant).get().last_error)
    percents = [int(p) for _, p in seen]
    assert any(0 < p < 100 for p in percents), seen  # seen while running, not only at the end
    assert percents == sorted(percents)
    assert _css(browser, "#training-progress-bar").get_attribute("value") == "100"
    assert ModelVersion.objects.for_tenant(tenant).get().status == "active"


def test_the_inspector_shows_demo_user_0003s_recommendations(browser, live_server):
    # The demo tenant as `make run` seeds it, with the fast training settings of the tests.
    demo = TenantFactory(slug="demo", name="Demo Books & Goods")
    configure(demo, **FAST_SETTINGS)
    call_command("seed_demo", stdout=io.StringIO(), stderr=io.StringIO())
    version = ModelVersion.objects.for_tenant(demo).get(status="active")
    base = live_server.url
    admin_log_in(browser, base, "owner@demo.example", "discreet-demo")
    browser.get(f"{base}/admin/modeling/modelversion/")
    _css(browser, "#inspector-link").click()
    wait(browser, lambda d: d.find_elements("css selector", "#id_subject"))
    _css(browser, "#id_subject").send_keys("demo-user-0003")
    _submit(browser, "#inspect")
    rows = browser.find_elements("css selector", "#inspection-items tr.inspection-item")
    assert rows, browser.page_source[:3000]
    assert _css(browser, "#inspection-version").text == f"v{version.number}"
    assert _css(browser, "#inspection-level").text in {"full", "session", "off"}
    assert _css(browser, "#inspection-consent")
    assert "demo-user-0003" not in _css(browser, "#inspection").text
    browser.set_script_timeout(60)
    assert axe_violations(browser, impacts=SERIOUS) == []
    entry = AuditEvent.objects.for_tenant(demo).get(action="modeling.subject_inspected")
    assert "demo-user-0003" not in str(entry.details)
    assert Tenant.objects.filter(slug="demo").count() == 1
