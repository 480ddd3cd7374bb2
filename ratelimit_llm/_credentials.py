"""Credentials a call may be sent with, and the redacted names they are known by.

An API key must never reach a log line, a repr, an exception, a statistic or a state
file. Everything in ratelimit-llm therefore refers to a credential by `redact_key` of its
key (``sk-...WXYZ``) or by the name the user gave it; the key itself only ever travels
in the ``Authorization`` / ``api-key`` header of the request it authenticates.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Credential", "redact_key"]


def redact_key(key: str | None) -> str:
    """A short name for ``key`` that reveals nothing usable: ``sk-...WXYZ``.

    Keeps the conventional prefix up to its first dash (``sk-``, ``gsk_`` style prefixes
    are cut at 4 characters) and the last four characters, as provider dashboards do.
    Keys shorter than 12 characters are named by their length alone.
    """
    if not key:
        return "<no key>"
    if len(key) < 12:
        return f"<{len(key)}-char key>"
    prefix = key[: key.index("-") + 1] if "-" in key[:8] else key[:4]
    return f"{prefix}...{key[-4:]}"


@dataclass(frozen=True)
class Credential:
    """One credential the user is entitled to use: a key, and where and as whom to use it.

    ``organization`` and ``project`` become the ``OpenAI-Organization`` and
    ``OpenAI-Project`` headers; ``base_url`` sends the call to another endpoint (an Azure
    deployment in another region, say). ``name`` labels it in logs and statistics;
    by default it is the redacted key.

    Example::

        Credential("sk-proj-...", project="proj_eval")
        Credential(azure_key_2, base_url="https://westeurope.example.azure.com/openai/")
    """

    api_key: str = field(repr=False)
    organization: str | None = None
    project: str | None = None
    base_url: str | None = None
    name: str = ""

    def __post_init__(self) -> None:
        # The type only, never the value: a key in the wrong wrapper is still a key.
        if not isinstance(self.api_key, str):
            kind = type(self.api_key).__name__
            raise TypeError(f"Credential.api_key must be a str, got {kind}")
        if not self.api_key:
            raise ValueError("Credential.api_key must be a non-empty string")
        for label in ("organization", "project", "base_url"):
            value = getattr(self, label)
            if value is not None and not isinstance(value, str):
                kind = type(value).__name__
                raise TypeError(f"Credential.{label} must be a str or None, got {kind}")
        if not isinstance(self.name, str):
            raise TypeError(f"Credential.name must be a str, got {type(self.name).__name__}")
        if not self.name:
            object.__setattr__(self, "name", redact_key(self.api_key))

    def __repr__(self) -> str:
        extras = "".join(
            f", {label}={value!r}"
            for label, value in (
                ("organization", self.organization),
                ("project", self.project),
                ("base_url", self.base_url),
            )
            if value
        )
        return f"Credential({self.name!r}{extras})"
