"""The user's view, in headless Chromium: register, log in, start tasks and watch the bars move live."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from tests.support import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
DEADLINE_MS = 30_000
PASSWORD = "correct horse battery"
DEMO_FORM = "form[data-task-form]:has(input[name=name][value=example_long_task])"

# Runs before the page's own scripts: records every aria-valuenow the page ever shows, per task,
# and every task item ever added to the list, so tests can check the history rather than a snapshot.
RECORDER = """
window.__progress = {};
window.__added = [];
new MutationObserver(function (records) {
  records.forEach(function (r) {
    if (r.type === 'attributes') {
      var item = r.target.closest('li[data-task-id]');
      var id = item ? item.dataset.taskId : '?';
      (window.__progress[id] = window.__progress[id] || []).push(Number(r.target.getAttribute('aria-valuenow')));
    } else if (r.target.id === 'tasks') {
      r.addedNodes.forEach(function (n) { if (n.dataset) window.__added.push(n.dataset.taskId); });
    }
  });
}).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ['aria-valuenow'] });
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator:
    """Contexts (separate cookie jars) closed at teardown; each page's script errors are collected."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []

    def make(**options) -> BrowserContext:
        context = browser.new_context(**options)
        context.set_default_timeout(DEADLINE_MS)
        context.add_init_script(RECORDER)
        context.on("page", lambda page: page.on("pageerror", lambda exc: errors.append(str(exc))))
        contexts.append(context)
        return context

    try:
        yield make
    finally:
        for context in contexts:
            context.close()
    assert errors == [], f"uncaught errors on the page: {errors}"


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def register(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/auth/register")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat password").fill(PASSWORD)
    page.get_by_role("button", name="Register").click()
    expect(page).to_have_url(f"{base_url}/auth/login")
    expect(page.locator(".flashes")).to_contain_text("You can log in now")


def log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/auth/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base_url}/")
    expect(page.locator(".who")).to_have_text(username)
    # The socket is up and has joined the user's room before anything is started.
    expect(page.locator("[data-connection-status]")).to_have_text("Live")


def signed_in_page(context: BrowserContext, base_url: str, username: str, *, new_user: bool) -> Page:
    page = context.new_page()
    if new_user:
        register(page, base_url, username)
    log_in(page, base_url, username)
    return page


def start_demo_task(page: Page, steps: int | str, delay: float | str) -> None:
    form = page.locator(DEMO_FORM)
    form.locator("input[name=steps]").fill(str(steps))
    form.locator("input[name=delay]").fill(str(delay))
    button = form.get_by_role("button", name="Start")
    button.click()
    # The button is disabled while the request is in flight and enabled again when it answered.
    expect(button).to_be_enabled()


def wait_until_done(item) -> None:
    expect(item.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100", timeout=DEADLINE_MS)
    expect(item).to_have_attribute("data-status", "succeeded", timeout=DEADLINE_MS)
    expect(item.locator(".task-status")).to_contain_text("done")


def progress_history(page: Page, task_id: str) -> list[int]:
    return page.evaluate("id => window.__progress[id] || []", task_id)


def count_main_frame_navigations(page: Page) -> list[str]:
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: frame == page.main_frame and navigations.append(frame.url))
    return navigations


def test_register_log_in_start_a_task_and_watch_it_finish_without_a_reload(live_stack, new_context, artifacts):
    base = live_stack.base_url
    page = signed_in_page(new_context(), base, "alice", new_user=True)
    page.evaluate("window.__marker = 1")
    navigations = count_main_frame_navigations(page)
    tasks = page.locator("#tasks li")
    expect(tasks).to_have_count(0)
    expect(page.locator("[data-empty]")).to_be_visible()

    start_demo_task(page, steps=5, delay=0.2)

    expect(tasks).to_have_count(1)
    item = tasks.first
    wait_until_done(item)
    expect(item.locator(".task-name")).to_have_text("example_long_task")
    expect(item.locator(".task-message")).to_have_text("Step 5/5 — Step 5 of 5")
    expect(page.locator("[data-empty]")).to_be_hidden()

    seen = progress_history(page, item.get_attribute("data-task-id"))
    assert seen == sorted(seen), f"the bar went backwards: {seen}"
    assert any(0 < v < 100 for v in seen), f"no intermediate value was shown: {seen}"
    assert seen[-1] == 100
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    assert navigations == [], f"the page navigated: {navigations}"
    page.screenshot(path=artifacts / "browser-progress.png", full_page=True)

    # The same flow on a phone-sized screen, caught mid-task and when done.
    phone = signed_in_page(
        new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True),
        base,
        "alice",
        new_user=False,
    )
    start_demo_task(phone, steps=5, delay=0.2)
    phone_item = phone.locator("#tasks li").first
    phone_item.scroll_into_view_if_needed()
    wait_until_done(phone_item)
    bar = phone_item.get_by_role("progressbar").bounding_box()
    assert bar is not None and bar["width"] > 200 and bar["x"] >= 0 and bar["x"] + bar["width"] <= 390
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390, "the page scrolls sideways"
    phone.screenshot(path=artifacts / "browser-progress-phone.png", full_page=True)


def test_a_reload_mid_task_brings_the_bar_back_where_it_was(live_stack, new_context):
    base = live_stack.base_url
    page = signed_in_page(new_context(), base, "alice", new_user=True)
    start_demo_task(page, steps=20, delay=0.15)
    item = page.locator("#tasks li")
    expect(item).to_have_count(1)
    task_id = item.get_attribute("data-task-id")
    page.wait_for_function(
        "() => Number(document.querySelector('#tasks [role=progressbar]')?.getAttribute('aria-valuenow')) >= 20",
        timeout=DEADLINE_MS,
    )
    before = int(item.get_by_role("progressbar").get_attribute("aria-valuenow"))
    assert before < 100, "the task finished before the reload; the test proves nothing"

    page.reload()

    # The snapshot sent on connect is the first thing drawn: never behind what was already shown.
    page.wait_for_function("id => (window.__progress[id] || []).length > 0", arg=task_id, timeout=DEADLINE_MS)
    expect(page.locator("#tasks li")).to_have_count(1)
    expect(item).to_have_attribute("data-task-id", task_id)
    wait_until_done(item)
    seen = progress_history(page, task_id)
    assert seen[0] >= before, f"after the reload the bar started at {seen[0]}, below {before}"
    assert seen == sorted(seen), f"the bar went backwards: {seen}"
    assert seen[0] < 100 and seen[-1] == 100, f"the bar did not keep moving after the reload: {seen}"


def test_two_tasks_get_two_bars_and_another_user_sees_neither(live_stack, new_context):
    base = live_stack.base_url
    alice = signed_in_page(new_context(), base, "alice", new_user=True)
    bob = signed_in_page(new_context(), base, "bob", new_user=True)

    start_demo_task(alice, steps=5, delay=0.2)
    expect(alice.locator("#tasks li")).to_have_count(1)
    start_demo_task(alice, steps=4, delay=0.1)
    tasks = alice.locator("#tasks li")
    expect(tasks).to_have_count(2)
    ids = [tasks.nth(i).get_attribute("data-task-id") for i in range(2)]
    assert len(set(ids)) == 2
    for i in range(2):
        wait_until_done(tasks.nth(i))
    expect(tasks).to_have_count(2)
    for task_id in ids:
        seen = progress_history(alice, task_id)
        assert seen == sorted(seen) and seen[-1] == 100, seen

    # Bob was logged in and connected the whole time, and nothing was ever added to his list.
    expect(bob.locator("#tasks li")).to_have_count(0)
    assert bob.evaluate("window.__added") == []
    assert bob.evaluate("window.__progress") == {}
    expect(bob.locator("[data-empty]")).to_be_visible()
    expect(bob.locator("[data-connection-status]")).to_have_text("Live")


def test_bad_input_shows_a_clear_message_on_the_page(live_stack, new_context):
    base = live_stack.base_url
    page = signed_in_page(new_context(), base, "alice", new_user=True)
    form = page.locator(DEMO_FORM)
    error = form.locator("[data-form-error]")
    expect(error).to_be_hidden()
    # The browser would refuse 1000 itself; the server must refuse it too, and say why.
    form.locator("input[name=steps]").evaluate("input => input.removeAttribute('max')")

    start_demo_task(page, steps=1000, delay=0.2)

    expect(error).to_be_visible()
    expect(error).to_contain_text("steps")
    expect(error).to_contain_text("between 1 and 100")
    expect(page.locator("#tasks li")).to_have_count(0)

    # Fixing the value clears the message and the task starts.
    start_demo_task(page, steps=2, delay=0.05)
    expect(error).to_be_hidden()
    wait_until_done(page.locator("#tasks li").first)
