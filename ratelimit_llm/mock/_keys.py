"""Who is calling: the API key, its organization and project, and its printable name.

The raw key is needed to look up its configuration and nothing else: buckets are keyed by
a digest, and stats, logs and error messages only ever see `redact`'s output, so a mock
left running in a shared CI log never leaks a credential someone pasted in.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ._config import KeyConfig, LimitScope

__all__ = ["Identity", "IdentityCache", "api_key_from", "redact"]

# Keys shorter than this would be mostly revealed by prefix-plus-suffix redaction.
_MIN_REVEALING_LENGTH = 16


def redact(key: str) -> str:
    """A printable stand-in for an API key: ``sk-...abcd``, or a digest for short keys."""
    if len(key) >= _MIN_REVEALING_LENGTH:
        return f"{key[:3]}...{key[-4:]}"
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def api_key_from(authorization: str | None, azure_key: str | None) -> str | None:
    """The key in ``Authorization: Bearer ...`` (or Azure's ``api-key`` header), if any."""
    if authorization:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    if azure_key and azure_key.strip():
        return azure_key.strip()
    return None


@dataclass(frozen=True, slots=True)
class Identity:
    """Everything the server derives from a key and the org/project headers."""

    label: str
    organization: str
    project: str
    principal: str
    principal_label: str
    config: KeyConfig | None


class IdentityCache:
    """Derives identities, remembering recent ones so hashing stays off the hot path."""

    _MAX_ENTRIES = 4096

    def __init__(self, keys: dict[str, KeyConfig], scope: LimitScope) -> None:
        self._keys = keys
        self._scope = scope
        self._cache: dict[tuple[str, str | None, str | None], Identity] = {}

    def get(self, key: str, organization: str | None, project: str | None) -> Identity:
        cache_key = (key, organization, project)
        identity = self._cache.get(cache_key)
        if identity is None:
            if len(self._cache) >= self._MAX_ENTRIES:
                self._cache.clear()
            identity = self._cache[cache_key] = self._derive(key, organization, project)
        return identity

    def _derive(self, key: str, organization: str | None, project: str | None) -> Identity:
        config = self._keys.get(key)
        digest = hashlib.sha256(key.encode()).hexdigest()
        org = organization or (config.organization if config else None) or f"org-{digest[:24]}"
        proj = project or (config.project if config else None) or f"proj_{digest[24:48]}"
        label = redact(key)
        if self._scope == "organization":
            principal, principal_label = f"org:{org}", org
        elif self._scope == "project":
            principal, principal_label = f"project:{org}/{proj}", f"{org}/{proj}"
        else:
            principal, principal_label = f"key:{digest}", label
        return Identity(label, org, proj, principal, principal_label, config)
