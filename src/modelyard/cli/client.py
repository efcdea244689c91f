"""A small HTTP client of the modelyard server for the CLI. httpx is imported when a command
first calls: a CLI that only prints its help never pays for it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelyard.errors import ModelyardError, ServerUnavailable

if TYPE_CHECKING:
    import httpx


class ApiError(ModelyardError):
    """An error the server answered with."""

    def __init__(self, status: int, code: str, message: str, hint: str | None) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code


class Client:
    """One connection per call: a CLI command makes a handful of requests, then exits."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 600.0) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def streaming(self) -> httpx.Client:
        """A client for answers that stream (logs, chat, download progress): no read timeout."""
        import httpx

        return httpx.Client(headers=self.headers, timeout=httpx.Timeout(10.0, read=None))

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        try:
            with httpx.Client(base_url=self.base_url, headers=self.headers, timeout=self.timeout) as http:
                response = http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise ServerUnavailable(self.base_url) from None
        if response.status_code >= 400:
            self.raise_for(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    @staticmethod
    def raise_for(response: httpx.Response) -> None:
        """Turn an error answer (modelyard's error shape) into an ApiError."""
        try:
            err = response.json()["error"]
            code, message, hint = err.get("code") or "error", err["message"], err.get("hint")
        except (ValueError, KeyError, TypeError):
            code, message, hint = "http_error", response.text or response.reason_phrase, None
        raise ApiError(response.status_code, code, message, hint)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, json=body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, json=body)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, json=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)
