"""A 1,000-task run's page in a real browser (issue 12's budget, issue 15 item 3): the counts of every task, the
first page of the task table, the fan-out drawn as one group node, and paging and filtering down to a failed task."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.console.conftest import log_in
from tests.support.big_run import seed_fan_out
from tests.support.server import OdinServer

SHARDS = 1_000


def test_a_thousand_task_run_pages_and_filters(
    console_server: OdinServer, db_url: str, page: Page, shots: Path
) -> None:
    names = seed_fan_out(db_url, "big-0000000-1", SHARDS)
    log_in(page, console_server)
    page.goto(f"{console_server.url}/console/runs/big-0000000-1")

    counts = page.locator("#task-counts")
    expect(counts).to_contain_text("1,002 tasks")
    expect(counts.locator('a[data-status="failed"] .n')).to_have_text("100")
    expect(counts.locator('a[data-status="succeeded"] .n')).to_have_text("901")
    # The first page of the table, not all of it.
    rows = page.locator("#tasks tbody tr")
    expect(rows).to_have_count(100)
    expect(rows.first).to_have_id("t-prep")
    # The fan-out is one node of the drawing, showing the worst of its members.
    group = page.locator('#dag a.group[data-group="shard-"]')
    expect(group).to_have_class("node group s-failed")
    expect(group.locator("text.st")).to_have_text("100 failed")
    expect(page.locator("#dag a.node")).to_have_count(3)
    page.screenshot(path=shots / "big-run.png", full_page=False)

    # Page on: the next 100 tasks follow the first 100.
    page.get_by_role("link", name="Next 100 tasks").click()
    expect(rows.first).to_have_id(f"t-{names[100]}")
    expect(rows).to_have_count(100)
    page.get_by_role("link", name="First page").click()
    expect(rows.first).to_have_id("t-prep")

    # Filter to the failed tasks, then by name to one of them, and open its row.
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    expect(rows.first).to_have_id("t-shard-00007")
    expect(rows.first.locator(".badge")).to_have_text("failed")
    page.get_by_label("Name starts with").fill("shard-0099")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_id("t-shard-00997")
    expect(rows.first.locator("td").nth(4)).to_have_text("1")  # its exit code
    page.screenshot(path=shots / "big-run-failed.png", full_page=False)

    # Clicking the group node lists its members.
    page.goto(f"{console_server.url}/console/runs/big-0000000-1")
    page.locator('#dag a.group[data-group="shard-"]').click()
    expect(rows.first).to_have_id("t-shard-00000")
