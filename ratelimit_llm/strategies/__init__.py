"""The strategies shipped with ratelimit-llm; compose them with ``+``.

* `FixedDelay`: a fixed pause between sends (or batches of sends), on top of the bucket.
* `AdaptiveBackoff`: retries what waiting can cure, waits exactly what the server names,
  and learns a limit the server does not report.
* `KeyRotation`: routes each call to the credential that can serve it soonest.

See ``docs/strategies.md`` for how to choose.
"""

from __future__ import annotations

from ._adaptive import AdaptiveBackoff
from ._fixed import FixedDelay
from ._rotation import CredentialState, KeyRotation

__all__ = ["AdaptiveBackoff", "CredentialState", "FixedDelay", "KeyRotation"]
