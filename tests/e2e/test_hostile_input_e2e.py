"""Hostile input against a real web node (eventlet): a 100 MB body is refused before it is sent,
and a NUL byte on the wire gets a 400, never a 500 (issue 16, finding 7)."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
import requests

pytestmark = pytest.mark.e2e

# Generous: the answer comes as soon as the head is read; only a node that waits for the body is slow.
ANSWER_TIMEOUT = 20


def answer_to_a_100_mb_body(base_url: str, path: str, content_type: str) -> bytes:
    """Send the head of a 100 MB request and 64 KiB of its body, then read whatever the node answers."""
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=ANSWER_TIMEOUT) as conn:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {100 * 1024 * 1024}\r\n\r\n"
        )
        conn.sendall(head.encode() + b"{" + b" " * 64 * 1024)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/api/users", "application/json"), ("/auth/login", "application/x-www-form-urlencoded")],
)
def test_a_100_mb_body_is_answered_413_before_it_is_sent(live_stack, path, content_type):
    answer = answer_to_a_100_mb_body(live_stack.base_url, path, content_type)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


def test_a_nul_byte_on_the_wire_is_a_400(live_stack):
    base = live_stack.base_url
    response = requests.post(
        f"{base}/api/users",
        json={"username": "a\x00b", "email": "a@example.com", "password": "correct horse battery"},
        timeout=10,
    )
    assert response.status_code == 400
    assert "NUL" in response.json()["error"]
    response = requests.post(f"{base}/api/tokens", auth=("a\x00b", "pw"), timeout=10)
    assert response.status_code == 400
