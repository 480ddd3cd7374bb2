"""OpenAI's error envelope and the exact texts of the errors that are not about rate limits.

Clients (the SDK, our classifier, users' retry code) branch on ``type`` and ``code`` and
sometimes on the message, so the wording here is the real API's wherever it is known.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BAD_JSON",
    "BadRequest",
    "NO_API_KEY",
    "OVERLOADED",
    "QUOTA",
    "SERVER_ERROR",
    "SLOW_DOWN",
    "error_body",
    "gateway_html",
    "invalid_key_message",
    "invalid_url_message",
]

NO_API_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field "
    "(with blank username) if you're accessing the API from your browser and are prompted for "
    "a username. You can obtain an API key from https://platform.openai.com/account/api-keys."
)
BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON. If you have trouble figuring out how to fix this, please contact "
    "us through our help center at help.openai.com.)"
)
QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors."
)
SERVER_ERROR = (
    "The server had an error while processing your request. Sorry about that! You can retry "
    "your request, or contact us through our help center at help.openai.com if the error persists."
)
OVERLOADED = "The engine is currently overloaded, please try again later"
SLOW_DOWN = (
    "A sudden increase in your request rate is impacting service reliability. Please reduce "
    "your request rate and try again later."
)


def error_body(
    message: str, type_: str | None, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """``{"error": {"message", "type", "param", "code"}}``, the envelope every error uses."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def invalid_key_message(redacted: str) -> str:
    return (
        f"Incorrect API key provided: {redacted}. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )


def invalid_url_message(method: str, path: str) -> str:
    return f"Invalid URL ({method} {path})"


def gateway_html(status: int) -> str:
    """The HTML page a CDN in front of the API answers with when the origin fails."""
    title = {502: "502 Bad Gateway", 504: "504 Gateway Time-out"}.get(status, f"{status} Error")
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
        "</body>\r\n</html>\r\n"
    )


class BadRequest(Exception):
    """A request the API would refuse with 400 ``invalid_request_error``."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, "invalid_request_error", self.param, self.code)
