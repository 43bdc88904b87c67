"""The JSON API (README, "JSON API") over HTTP: answers as data, refusals as ``ApiError``."""

from __future__ import annotations

from typing import Any

import requests
from requests.auth import AuthBase

TIMEOUT = 10.0


class Unreachable(Exception):
    pass


class ApiError(Exception):
    def __init__(self, status: int, message: str, body: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body


class _Bearer(AuthBase):
    # An auth object rather than a header: requests would replace a plain header with ~/.netrc credentials.
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


class Api:
    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = TIMEOUT) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._session = requests.Session()

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def request(
        self, method: str, path: str, *, json: Any = None, basic: tuple[str, str] | None = None
    ) -> Any:
        auth: AuthBase | tuple[str, str] | None = basic or (_Bearer(self.token) if self.token else None)
        try:
            response = self._session.request(
                method, self.base_url + path, json=json, auth=auth, timeout=self.timeout
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise Unreachable(f"cannot reach {self.base_url} ({type(exc).__name__})") from None
        body = None
        if response.content:
            try:
                body = response.json()
            except ValueError:
                body = None
        if not response.ok:
            error = body.get("error") if isinstance(body, dict) else None
            message = error if isinstance(error, str) else f"HTTP {response.status_code} {response.reason}"
            raise ApiError(response.status_code, message, body)
        return body
