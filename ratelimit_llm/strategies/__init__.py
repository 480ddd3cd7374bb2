"""Strategies: what to do around each send. Compose them with ``+``.

* `FixedDelay`: a fixed pause between sends (or batches of sends), on top of the bucket.
* `AdaptiveBackoff`: retries what waiting can cure, within a budget per kind of refusal
  (`RETRY_BUDGETS`), waiting exactly what the server names.
* `KeyRotation`: routes each call to the credential (`Credential`) that can serve it
  soonest.

Writing one of your own: subclass `Strategy` and override the hooks you need; each gets
the call's `Attempt` and an answer's hook returns a `Decision` (or ``None``: no opinion).
Strategies decide; they never correct the buckets (the `ratelimit_llm.core.Learner`
does). See ``docs/strategies.md`` for how to choose.
"""

from __future__ import annotations

from .._credentials import Credential, redact_key
from .._strategy import Attempt, Decision, Strategy, compose
from ._adaptive import RETRY_BUDGETS, AdaptiveBackoff
from ._fixed import FixedDelay
from ._rotation import CredentialState, KeyRotation

__all__ = [
    "RETRY_BUDGETS",
    "AdaptiveBackoff",
    "Attempt",
    "Credential",
    "CredentialState",
    "Decision",
    "FixedDelay",
    "KeyRotation",
    "Strategy",
    "compose",
    "redact_key",
]
