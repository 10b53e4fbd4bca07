"""The console in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium against a live server on 127.0.0.1. A staff operator
logs in, the dashboard draws its charts from the records made here, and a running job's progress
bar follows the job as it moves, on the dashboard and on the job's own page.

Skipped, saying why, when Selenium, Chromium or its driver is missing.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from syncengine.choices import JobStatus
from syncengine.models import FeedFile, SyncJob, Vehicle
from tests.console.conftest import make_job
from tests.factories import IntegrationFactory, UserFactory

webdriver = pytest.importorskip(
    "selenium.webdriver",
    reason="Selenium is not installed (pip install 'selenium>=4.20,<5').",
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None or CHROMEDRIVER is None,
        reason="Chromium and its driver are not installed "
        "(apt-get install chromium chromium-driver).",
    ),
    pytest.mark.django_db(transaction=True),
]

PASSWORD = "correct horse battery staple"
# Long enough for two refreshes of the page's job feed (every 3 s) and a page load.
WAIT_SECONDS = 20


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1440,1000",
        "--no-first-run",
        "--disable-extensions",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-component-update",
        "--disable-background-networking",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    yield driver
    driver.quit()


def wait_for(driver: Any, condition: Any, message: str) -> Any:
    return WebDriverWait(driver, WAIT_SECONDS, poll_frequency=0.2).until(condition, message)


def log_in(driver: Any, live_server: Any, username: str, next_url: str) -> None:
    driver.get(f"{live_server.url}{reverse('admin:login')}?next={next_url}")
    driver.find_element(By.ID, "id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for(driver, lambda d: next_url in d.current_url, f"not taken to {next_url} after login")


def chart_data(driver: Any, canvas_id: str) -> dict[str, list[Any]]:
    """The data points of the Chart.js chart drawn on ``canvas_id``, by dataset label."""
    wait_for(
        driver,
        lambda d: d.execute_script(
            "return !!(window.Chart && Chart.getChart(arguments[0]))", canvas_id
        ),
        f"no chart was drawn on #{canvas_id}",
    )
    return driver.execute_script(
        "const chart = Chart.getChart(arguments[0]);"
        "return Object.fromEntries(chart.data.datasets.map(set => [set.label, set.data]));",
        canvas_id,
    )


def bar_value(driver: Any, selector: str) -> str | None:
    return driver.execute_script(
        "const bar = document.querySelector(arguments[0]);"
        "return bar ? bar.getAttribute('aria-valuenow') : null;",
        selector,
    )


def progress(job: SyncJob, done: int, total: int = 1000) -> None:
    """The job's next checkpoint, as its worker would write it."""
    SyncJob.objects.filter(pk=job.pk).update(
        progress={"recordsDone": done, "recordsTotal": total, "entity": "orders"},
        heartbeat_at=timezone.now(),
    )


def severe_errors(driver: Any) -> list[str]:
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]
    ]


def test_an_operator_sees_the_charts_and_follows_a_running_job(browser, live_server, tenant):
    # Given: files received today and two days ago, and a job 42% through its records.
    operator = UserFactory(account=None, is_staff=True, is_superuser=True, username="ops")
    operator.set_password(PASSWORD)
    operator.save()
    feed = IntegrationFactory(account=tenant.account, name="Lakeside vAuto")
    now = timezone.now()
    for received_at, status, created in (
        (now, "completed", 12),
        (now, "rejected", 0),
        (now - timedelta(days=2), "completed", 5),
    ):
        FeedFile.objects.create(
            account=tenant.account,
            integration=feed,
            filename="inventory.csv",
            received_at=received_at,
            processed_at=received_at,
            status=status,
            records_created=created,
        )
    job = make_job(
        account=tenant.account,
        integration=feed,
        status=JobStatus.RUNNING,
        started_at=now,
        attempts=1,
    )
    progress(job, 420)
    dashboard = reverse("admin:operations")

    # When: the operator logs in and opens the dashboard.
    log_in(browser, live_server, "ops", dashboard)

    # Then: the charts hold the files and rows made above, on the right days.
    assert browser.find_element(By.ID, "chart-files").tag_name == "canvas"
    files = chart_data(browser, "chart-files")
    assert files["Received"][-1] == 2
    assert files["Received"][-3] == 1
    assert files["Applied"][-1] == 1
    assert files["Rejected"][-1] == 1
    assert sum(files["Received"]) == 3
    assert len(files["Received"]) == 30
    rows = chart_data(browser, "chart-rows")
    assert rows["Created (files)"][-1] == 12
    assert rows["Created (files)"][-3] == 5
    assert "Completed" in chart_data(browser, "chart-jobs")

    # And the running job's bar moves as the job checkpoints, without a reload.
    row_bar = f'#railyard-running tr[data-job="{job.pk}"] .railyard-progress'
    assert bar_value(browser, row_bar) == "42"
    progress(job, 730)
    wait_for(browser, lambda d: bar_value(d, row_bar) == "73", "the dashboard's bar did not move")

    # When: the operator opens the job's page.
    browser.get(live_server.url + reverse("admin:syncengine_syncjob_change", args=[job.pk]))

    # Then: its bar shows where the job is, follows it, and the page shows the end.
    page_bar = ".field-progress_shown .railyard-progress"
    assert bar_value(browser, page_bar) == "73"
    assert "73% · 730 of 1,000 records (orders)" in browser.page_source
    assert browser.find_element(By.CSS_SELECTOR, "button[value=cancel]").is_displayed()
    progress(job, 900)
    wait_for(browser, lambda d: bar_value(d, page_bar) == "90", "the job page's bar did not move")
    SyncJob.objects.filter(pk=job.pk).update(status=JobStatus.COMPLETED, completed_at=now)
    # The page reloads itself once the job has ended: its bar full, "Run again" for "Cancel".
    wait_for(
        browser,
        lambda d: d.find_elements(By.CSS_SELECTOR, "button[value=rerun]"),
        "the job page did not show the job's end",
    )
    assert bar_value(browser, page_bar) == "100"
    assert not browser.find_elements(By.CSS_SELECTOR, "button[value=cancel]")
    assert severe_errors(browser) == []


def test_the_lists_fit_a_1440_pixel_screen(browser, live_server, tenant):
    operator = UserFactory(account=None, is_staff=True, is_superuser=True, username="ops")
    operator.set_password(PASSWORD)
    operator.save()
    feed = IntegrationFactory(
        account=tenant.account,
        name="Lakeside Ford vAuto inventory",
        status="errored",
        last_sync_at=timezone.now(),
        consecutive_failures=12,
    )
    Vehicle.objects.create(
        account=tenant.account,
        integration=feed,
        dealership=feed.dealership,
        key="1FTFW1E50PFA00001",
        vin="1FTFW1E50PFA00001",
        stock_number="LK-2025-00001",
        year=2025,
        make="Ford",
        model="F-150 Lightning",
        price=Decimal("64999.00"),
        currency="USD",
        first_seen_at=timezone.now(),
        last_seen_at=timezone.now(),
    )
    FeedFile.objects.create(
        account=tenant.account,
        integration=feed,
        filename="lakeside-ford-inventory-2025-03-15T08-00-00.csv",
        received_at=timezone.now(),
        status="completed_with_warnings",
        records_total=12345,
        records_created=120,
        records_updated=345,
        records_unchanged=11880,
        records_errors=12,
        duration_ms=4321,
    )
    make_job(account=tenant.account, integration=feed, status=JobStatus.RUNNING)
    log_in(browser, live_server, "ops", reverse("admin:index"))

    for name in (
        "syncengine_feedfile",
        "syncengine_syncjob",
        "syncengine_vehicle",
        "integrations_integration",
    ):
        browser.get(live_server.url + reverse(f"admin:{name}_changelist"))
        # The list scrolls sideways inside its box when its columns do not fit.
        overflow = browser.execute_script(
            "const box = document.getElementById('result_list').parentElement;"
            "return box.scrollWidth - box.clientWidth;"
        )
        browser.save_screenshot(f"/tmp/rh_c_{name}.png")
        assert overflow <= 0, f"{name}: the list is {overflow} px wider than the screen"
