"""The Dagster UI in a real headless Chromium (Debian's, driven by Playwright)."""

import time

import dagster as dg
import pytest
from playwright.sync_api import Page, sync_playwright

from tests.e2e.conftest import ARTIFACTS
from tests.e2e.test_launches import fleet_status, instance, wait_for

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialing out, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def page(stack):
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            browser.close()


def open_launchpad(page: Page, stack, partition: str, config_yaml: str) -> None:
    """Asset page → Materialize menu → Open launchpad → Add new partition → the given run config."""
    page.goto(f"{stack.url}/assets/deliberation", wait_until="networkidle")
    page.locator("button:right-of(:text('Materialize…'))").first.click()
    page.get_by_role("menuitem", name="Open launchpad").click()
    page.get_by_role("button", name="Add new partition").click()
    page.get_by_placeholder("name").fill(partition)
    page.get_by_role("button", name="Save").click()
    page.locator(".CodeMirror").wait_for()
    # Selecting the new partition regenerates the config; set ours once that is done.
    page.get_by_text("Generating configuration").wait_for(state="hidden", timeout=60000)
    page.get_by_placeholder("Partition").and_(page.locator(f"[value='{partition}']")).wait_for(timeout=30000)
    page.evaluate("(text) => document.querySelector('.CodeMirror').CodeMirror.setValue(text)", config_yaml)


def test_launch_from_the_ui_and_see_the_status(stack, page):
    partition = f"ui-{int(time.time())}"
    # Only the task: every other field keeps its default.
    open_launchpad(page, stack, partition, 'ops:\n  deliberation:\n    config:\n      task: "Design a cache"\n')
    page.get_by_text("No errors").wait_for()
    page.get_by_role("dialog").get_by_role("button", name="Materialize").click()

    def run_finished():
        with instance(stack) as dagster:
            runs = dagster.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": partition}))
            return runs and runs[0].is_finished and runs[0]

    run = wait_for(run_finished, 300, "the UI-launched run", stack)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    document = fleet_status(stack, partition)
    assert document["status"] == "COMPLETED" and set(document["winners"]) == {"DEV", "QA", "ARCHITECT"}

    page.goto(f"{stack.url}/assets/deliberation?view=partitions&partition={partition}", wait_until="networkidle")
    page.get_by_text("COMPLETED").first.wait_for(timeout=30000)
    page.get_by_text("expected_count").first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "deliberation-asset.png"), full_page=True)


def test_an_unknown_role_is_marked_while_typing(stack, page):
    """Roles are an enum of the profiles in the config schema: the launchpad marks one it does not know."""
    bad = "ops:\n  deliberation:\n    config:\n      task: t\n      roles: [WIZARD]\n"
    open_launchpad(page, stack, f"ui-role-{int(time.time())}", bad)
    page.get_by_text("not in enum", exact=False).first.wait_for(timeout=60000)
    assert "WIZARD" in page.content()
    page.screenshot(path=str(ARTIFACTS / "unknown-role.png"))
    assert page.get_by_role("dialog").get_by_role("button", name="Materialize").is_disabled()


def test_invalid_launchpad_config_is_refused_in_the_ui(stack, page):
    """What the schema cannot say (a bound) is refused at launch, every bad field named."""
    partition = f"ui-bad-{int(time.time())}"
    bad = "ops:\n  deliberation:\n    config:\n      task: t\n      agents_per_role: 0\n      rounds: 9\n"
    open_launchpad(page, stack, partition, bad)
    page.get_by_role("dialog").get_by_role("button", name="Materialize").click()
    page.get_by_text("Invalid deliberation request", exact=False).first.wait_for(timeout=60000)
    assert "agents_per_role" in page.content() and "rounds" in page.content()
    page.screenshot(path=str(ARTIFACTS / "refused-launch.png"))
    with instance(stack) as dagster:
        assert not dagster.get_runs(filters=dg.RunsFilter(tags={"dagster/partition": partition}))
        records = dagster.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("deliberation"), asset_partitions=[partition]), limit=1
        ).records
        assert not records
