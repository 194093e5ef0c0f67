"""A client for the JSON API under /api/v1 in tests, and the check of its error shape."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

API = "/api/v1"


class Api:
    """A client that sends the bearer token on every call."""

    def __init__(self, client: FlaskClient, token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.get(API + path, headers=self.headers, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> TestResponse:
        return self.client.post(API + path, json=json, headers=self.headers, **kwargs)

    def call(self, method: str, path: str, **kwargs: Any) -> TestResponse:
        return self.client.open(API + path, method=method, headers=self.headers, **kwargs)


def assert_error(response: TestResponse, status: int, field: str | None) -> str:
    """The response is the API's error shape with this status and field; returns the message."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["field"] == field
    assert isinstance(error["message"], str) and error["message"]
    return str(error["message"])
