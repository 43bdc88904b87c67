"""The pages under their Content-Security-Policy, in headless Chromium: the live bar works with no
violation reported, and no other site can frame a page to click "Start" through it (issue 16, finding 8)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from tests.e2e import test_browser
from tests.e2e.test_browser import DEADLINE_MS, signed_in_page, start_demo_task, wait_until_done

# The browser and its contexts (no page may throw) are the ones the other browser tests use.
browser = test_browser.browser
new_context = test_browser.new_context

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

# Runs before the page's scripts: every violation the browser reports, in order.
VIOLATIONS = """
window.__violations = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__violations.push(e.violatedDirective + ' ' + e.blockedURI);
});
"""


def test_the_live_bar_works_with_no_policy_violation(live_stack, new_context):
    context = new_context()
    context.add_init_script(VIOLATIONS)
    console: list[str] = []
    context.on("console", lambda message: console.append(message.text))
    base = live_stack.base_url
    page = signed_in_page(context, base, "alice", new_user=True)
    wait_until_done(start_demo_task(page, steps=3, delay=0.1))
    for path in ("/tasks", "/search?q=hello"):
        page.goto(base + path)
        expect(page.locator("body")).to_be_visible()
    assert page.evaluate("window.__violations") == []
    assert [m for m in console if "Content Security Policy" in m] == []


@contextmanager
def attacker_site(html: str) -> Iterator[str]:
    """Another origin of the same site (the app's host, another port): the browser sends it cookies."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/prize"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_no_other_page_can_frame_the_task_page(live_stack, new_context):
    context = new_context()
    base = live_stack.base_url
    signed_in_page(context, base, "mallory", new_user=True)
    attack = context.new_page()
    html = f'<h1>Win a prize</h1><iframe src="{base}/" onload="document.title = \'framed\'"></iframe>'
    with attacker_site(html) as url:
        attack.goto(url)
        # The frame has finished loading whatever the browser let into it.
        expect(attack).to_have_title("framed", timeout=DEADLINE_MS)
        expect(attack.frame_locator("iframe").get_by_role("button", name="Start")).to_have_count(0)
        assert len(attack.frames) == 2
        assert not attack.frames[1].url.startswith(base), attack.frames[1].url
