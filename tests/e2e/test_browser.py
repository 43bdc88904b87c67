"""The user's view, in headless Chromium: register, log in, start tasks and watch the bars move live."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from tests.support import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"
# Generous: everything below waits on events, never on the clock, so a slow machine only waits longer.
DEADLINE_MS = 30_000
PASSWORD = "correct horse battery"
DEMO_FORM = "form[data-task-form]:has(input[name=name][value=example_long_task])"

# Runs before the page's own scripts: records every aria-valuenow the page ever shows, per task,
# and every task item ever added to the list, so tests can check the history and not only the end.
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
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Browser contexts (each its own cookie jar), closed at teardown; no page may throw."""
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
    expect(page).to_have_url(f"{base_url}/auth/login", timeout=DEADLINE_MS)
    expect(page.locator(".flashes")).to_contain_text("You can log in now")


def log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/auth/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base_url}/", timeout=DEADLINE_MS)
    expect(page.locator(".who")).to_have_text(username)
    # The socket is up and in the user's room before anything is started.
    expect(page.locator("[data-connection-status]")).to_have_text("Live", timeout=DEADLINE_MS)


def signed_in_page(context: BrowserContext, base_url: str, username: str, *, new_user: bool) -> Page:
    page = context.new_page()
    if new_user:
        register(page, base_url, username)
    log_in(page, base_url, username)
    return page


def submit_demo_form(page: Page, steps: int, delay: float) -> dict:
    """Fill in the demo task's form and click Start, as a user would; return the server's answer."""
    form = page.locator(DEMO_FORM)
    form.locator("input[name=steps]").fill(str(steps))
    form.locator("input[name=delay]").fill(str(delay))
    button = form.get_by_role("button", name="Start")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/tasks")) as answer:
        button.click()
    # The button is disabled while the request is in flight and enabled again once it was answered.
    expect(button).to_be_enabled(timeout=DEADLINE_MS)
    response = answer.value
    return {"status": response.status, "body": response.json()}


def start_demo_task(page: Page, steps: int, delay: float) -> Locator:
    """Start a demo task from the page and return its item in the live list."""
    answer = submit_demo_form(page, steps, delay)
    assert answer["status"] == 202, answer
    expect(page.locator(DEMO_FORM).locator("[data-form-error]")).to_be_hidden()
    item = page.locator(f'#tasks li[data-task-id="{answer["body"]["id"]}"]')
    expect(item).to_have_count(1, timeout=DEADLINE_MS)
    return item


def wait_until_done(item: Locator) -> None:
    expect(item.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100", timeout=DEADLINE_MS)
    expect(item).to_have_attribute("data-status", "succeeded", timeout=DEADLINE_MS)
    expect(item.locator(".task-status")).to_have_text("100% · done")


def progress_history(page: Page, item: Locator) -> list[int]:
    """Every aria-valuenow this page has shown for the task, in order."""
    return page.evaluate("id => window.__progress[id] || []", item.get_attribute("data-task-id"))


@contextmanager
def frozen(pids: list[int]) -> Iterator[None]:
    """Pause processes (SIGSTOP) for the duration of the block, and always resume them."""
    try:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def test_register_log_in_start_a_task_and_watch_it_finish_without_a_reload(
    live_stack, new_context, artifacts
):
    base = live_stack.base_url
    page = signed_in_page(new_context(), base, "alice", new_user=True)
    page.evaluate("window.__marker = 1")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: frame == page.main_frame and navigations.append(frame.url))
    expect(page.locator("#tasks li")).to_have_count(0)
    expect(page.locator("[data-empty]")).to_be_visible()

    item = start_demo_task(page, steps=5, delay=0.2)

    wait_until_done(item)
    expect(page.locator("#tasks li")).to_have_count(1)
    expect(item.locator(".task-name")).to_have_text("example_long_task")
    expect(item.locator(".task-message")).to_have_text("Step 5/5 — Done")
    expect(item.get_by_role("button", name="Cancel example_long_task")).to_be_hidden()
    expect(page.locator("[data-empty]")).to_be_hidden()
    seen = progress_history(page, item)
    assert seen == sorted(seen), f"the bar went backwards: {seen}"
    assert any(0 < v < 100 for v in seen), f"no value between 0 and 100 was ever shown: {seen}"
    assert seen[-1] == 100
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    assert navigations == [], f"the page navigated: {navigations}"
    page.screenshot(path=artifacts / "browser-progress.png", full_page=True)

    # The same user on a phone-sized screen: the finished task is listed, a new one runs above it.
    phone = signed_in_page(
        new_context(
            viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
        ),
        base,
        "alice",
        new_user=False,
    )
    expect(phone.locator("#tasks li")).to_have_count(1)
    expect(phone.locator("#tasks li").first).to_have_attribute("data-status", "succeeded")
    phone_item = start_demo_task(phone, steps=5, delay=0.2)
    wait_until_done(phone_item)
    expect(phone.locator("#tasks li")).to_have_count(2)
    phone_item.evaluate("item => item.scrollIntoView({block: 'center'})")
    bar = phone_item.get_by_role("progressbar").bounding_box()
    assert bar is not None and bar["width"] > 200 and bar["x"] >= 0 and bar["x"] + bar["width"] <= 390, bar
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390, "the page scrolls sideways"
    # What the phone shows once scrolled to the task, rather than the whole long page.
    phone.screenshot(path=artifacts / "browser-progress-phone.png")


def test_a_reload_mid_task_brings_the_bar_back_where_it_was(live_stack, new_context, artifacts):
    base = live_stack.base_url
    worker = next(p for p in live_stack.processes if p.name == "worker")
    page = signed_in_page(new_context(), base, "alice", new_user=True)
    item = start_demo_task(page, steps=20, delay=0.15)
    bar = item.get_by_role("progressbar")
    page.wait_for_function(
        "id => Number(document.querySelector(`[data-task-id='${id}'] [role=progressbar]`)"
        "  ?.getAttribute('aria-valuenow')) >= 20",
        arg=item.get_attribute("data-task-id"),
        timeout=DEADLINE_MS,
    )
    # Freeze the worker and its work horse so nothing live can arrive: whatever the reloaded
    # page shows can only come from the state the server sends on page load and socket connect.
    with frozen([worker.pid, *worker.descendants()]):
        before = int(bar.get_attribute("aria-valuenow"))
        assert before < 100, "the task finished before the reload; the test proves nothing"

        page.reload()

        expect(item).to_have_count(1, timeout=DEADLINE_MS)
        expect(page.locator("[data-connection-status]")).to_have_text("Live", timeout=DEADLINE_MS)
        expect(item).to_have_attribute("data-status", "running")
        after = progress_history(page, item)
        assert len(after) == 1, f"live events arrived while the worker was frozen: {after}"
        assert before <= after[0] < 100, f"before the reload the bar was at {before}; after it, {after}"
        item.evaluate("item => item.scrollIntoView({block: 'center'})")
        page.screenshot(path=artifacts / "browser-progress-reloaded.png")

    wait_until_done(item)
    seen = progress_history(page, item)
    assert seen == sorted(seen), f"the bar went backwards: {seen}"
    assert len(seen) > 2 and seen[-1] == 100, f"the bar did not keep moving after the reload: {seen}"


def test_two_tasks_get_two_bars_and_another_user_sees_neither(live_stack, new_context):
    base = live_stack.base_url
    alice = signed_in_page(new_context(), base, "alice", new_user=True)
    bob = signed_in_page(new_context(), base, "bob", new_user=True)

    first = start_demo_task(alice, steps=5, delay=0.2)
    second = start_demo_task(alice, steps=4, delay=0.1)

    expect(alice.locator("#tasks li")).to_have_count(2)
    expect(alice.get_by_role("progressbar")).to_have_count(2)
    for item in (first, second):
        wait_until_done(item)
        seen = progress_history(alice, item)
        assert seen == sorted(seen) and seen[-1] == 100, seen
    expect(alice.locator("#tasks li")).to_have_count(2)

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
    # The browser would refuse 1000 by itself; the server must refuse it too, and say why.
    form.locator("input[name=steps]").evaluate("input => input.removeAttribute('max')")

    answer = submit_demo_form(page, steps=1000, delay=0.2)

    assert answer["status"] == 400, answer
    expect(error).to_be_visible()
    expect(error).to_contain_text("steps")
    expect(error).to_contain_text("between 1 and 100")
    expect(page.locator("#tasks li")).to_have_count(0)
    assert page.evaluate("window.__added") == []

    # A valid value clears the message and the task runs.
    wait_until_done(start_demo_task(page, steps=2, delay=0.05))
    expect(error).to_be_hidden()


def test_the_bar_resumes_after_the_server_restarts_mid_task(live_stack, new_context, artifacts):
    base = live_stack.base_url
    page = signed_in_page(new_context(), base, "alice", new_user=True)
    page.evaluate("window.__marker = 1")
    item = start_demo_task(page, steps=40, delay=0.1)
    bar = item.get_by_role("progressbar")
    page.wait_for_function(
        "el => Number(el.getAttribute('aria-valuenow')) >= 10", arg=bar.element_handle(), timeout=DEADLINE_MS
    )

    web = next(p for p in live_stack.processes if p.name == "web")
    web.stop()
    status = page.locator("[data-connection-status]")
    expect(status).to_have_text("Reconnecting…")
    expect(status).to_have_attribute("data-state", "reconnecting")
    page.screenshot(path=artifacts / "browser-reconnecting.png")

    # The worker carries on while the server is down; the new server replays what was missed.
    live_stack.start_web("web-2", port=int(base.rsplit(":", 1)[1]))
    expect(status).to_have_text("Live", timeout=DEADLINE_MS)
    wait_until_done(item)
    seen = progress_history(page, item)
    assert seen == sorted(seen), f"the bar went backwards: {seen}"
    assert page.evaluate("window.__marker") == 1, "the page was reloaded"
    expect(page.locator("#tasks li")).to_have_count(1)
