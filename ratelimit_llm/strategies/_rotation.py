"""KeyRotation: spread calls over several credentials, each with its own buckets.

For users entitled to more than one quota (keys of different projects or organisations,
Azure deployments in several regions), the fastest route for a call is the credential
whose bucket can serve it soonest. This strategy picks that credential before each
attempt, moves a call that hit a 429 to another one, and takes a credential out of
rotation for good when the server refuses it (401/403) or its quota is spent.

It is not a way around one account's limits: two keys of the same project share one
quota, and providers' terms forbid multiplying accounts to escape a limit.

Keys never leave the `Credential` they came in: everything here (reprs, events,
statistics, exceptions) names a credential by ``Credential.name`` only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from .._classify import ErrorInfo, ErrorKind
from .._credentials import Credential
from .._exceptions import CredentialsExhaustedError
from .._strategy import Attempt, Decision, Strategy
from .._telemetry import Event
from .._validate import check_number

__all__ = ["CredentialState", "KeyRotation"]

# Expected waits closer than this count as equal, so round-robin decides between them.
_TIE = 1e-9

_RETIRING: frozenset[ErrorKind] = frozenset(
    {ErrorKind.INSUFFICIENT_QUOTA, ErrorKind.AUTHENTICATION}
)


@dataclass(frozen=True, slots=True)
class CredentialState:
    """One credential as `KeyRotation.statistics` sees it."""

    #: ``Credential.name`` (the redacted key unless the user named it).
    name: str
    #: ``active``: in rotation; ``cooling``: rate limited a moment ago for some model;
    #: ``retired``: refused or out of quota, never used again.
    state: Literal["active", "cooling", "retired"]
    #: Why it is cooling or retired.
    reason: str | None = None
    #: Seconds of cooldown left (the longest over its models).
    cooling_for: float = 0.0


class KeyRotation(Strategy):
    """Route each attempt to the credential that can serve it soonest.

    Example::

        strategy = KeyRotation(
            [
                Credential(os.environ["OPENAI_KEY_RESEARCH"], project="proj_research"),
                Credential(os.environ["OPENAI_KEY_EVALS"], project="proj_evals"),
            ]
        ) + AdaptiveBackoff()
        client = ratelimit_llm.wrap(AsyncOpenAI(), rpm=500, tpm=200_000, strategy=strategy)

    Before each attempt it asks each credential's bucket for this call's model how long
    ``attempt.cost`` would wait (`RateLimiter.expected_wait`, the queue included) and
    picks the shortest; equal waits go round-robin, so equal idle keys share the load
    evenly. A credential cooling down after a 429 counts as busy until its cooldown ends.

    After an attempt:

    * 429 rate limit: the credential cools down for that model (for the wait the server
      named, which the learner also put on its bucket, else ``cooldown`` seconds). If
      another credential can serve the call at once, the call moves there at once;
      otherwise the decision is left to the retry policy that follows (the default
      `AdaptiveBackoff` waits, and the next attempt goes to the soonest key). A call
      moves at most once per credential, so the retry budget still bounds it.
    * insufficient quota or 401/403: the credential is retired for good (a
      ``key_retired`` event says why) and the call moves to another one; when none is
      left, the call fails with `CredentialsExhaustedError`.

    :param credentials: the credentials to use, as `Credential` objects or plain API
        keys. Their names must be unique (name them when two keys end alike).
    :param cooldown: seconds a credential rests after a 429 that named no wait.
    :raises ValueError: with no credential, duplicate names, or a bad ``cooldown``.
    """

    def __init__(self, credentials: Sequence[Credential | str], *, cooldown: float = 1.0) -> None:
        if isinstance(credentials, str | Credential):
            raise TypeError("credentials must be a sequence of Credential or str")
        chosen: list[Credential] = []
        for position, item in enumerate(credentials):
            if isinstance(item, Credential):
                chosen.append(item)
            elif isinstance(item, str):
                chosen.append(Credential(item))
            else:
                # The type only: the value may be a key in the wrong wrapper.
                raise TypeError(
                    f"credentials[{position}] must be a Credential or str, "
                    f"got {type(item).__name__}"
                )
        if not chosen:
            raise ValueError("KeyRotation needs at least one credential")
        seen: set[str] = set()
        for credential in chosen:
            if credential.name in seen:
                raise ValueError(
                    f"two credentials are both named {credential.name!r}; "
                    "give each a distinct Credential(name=...)"
                )
            seen.add(credential.name)
        cooldown = check_number("KeyRotation.cooldown", cooldown, low=0.0)
        self._credentials: tuple[Credential, ...] = tuple(chosen)
        self._names = frozenset(seen)
        self._cooldown = float(cooldown)
        #: name -> why it was retired.
        self._retired: dict[str, str] = {}
        #: (name, model group) -> clock time its cooldown ends, and why it cools.
        self._cooling: dict[tuple[str, str | None], float] = {}
        self._cooling_reason: dict[str, str] = {}
        # Round-robin: the scan for the soonest credential starts here.
        self._cursor = 0
        # The clock of the last attempt seen, for `statistics`.
        self._clock: Callable[[], float] | None = None

    @property
    def credentials(self) -> tuple[Credential, ...]:
        """The credentials, in the order given (retired ones included)."""
        return self._credentials

    @property
    def cooldown(self) -> float:
        """Seconds a credential rests after a 429 that named no wait."""
        return self._cooldown

    # -- the hooks -----------------------------------------------------------------------

    async def before_send(self, attempt: Attempt) -> None:
        self._clock = attempt.clock
        attempt.credential = self.choose(attempt)

    def after_response(self, attempt: Attempt) -> Decision | None:
        self._clock = attempt.clock
        credential, error = attempt.credential, attempt.error
        if credential is None or credential.name not in self._names or error is None:
            return None
        if error.kind in _RETIRING and not _model_access(error):
            return self._retire(attempt, credential.name, error)
        if error.kind is ErrorKind.RATE_LIMIT:
            return self._cool(attempt, credential.name, error)
        return None

    # -- choosing ------------------------------------------------------------------------

    def choose(self, attempt: Attempt) -> Credential:
        """The credential that can serve ``attempt`` soonest (round-robin among equals).

        Synchronous, so concurrent callers are routed one after another, each seeing
        the buckets as the previous ones left them.

        :raises CredentialsExhaustedError: if every credential is retired.
        """
        now = attempt.clock()
        group = attempt.pool.group(attempt.model)
        count = len(self._credentials)
        best: int | None = None
        best_wait = math.inf
        for step in range(count):
            index = (self._cursor + step) % count
            credential = self._credentials[index]
            if credential.name in self._retired:
                continue
            wait = self._wait(attempt, credential, group, now)
            if best is None or wait < best_wait - _TIE:
                best, best_wait = index, wait
        if best is None:
            raise CredentialsExhaustedError(self._retired)
        self._cursor = (best + 1) % count
        return self._credentials[best]

    def _wait(
        self, attempt: Attempt, credential: Credential, group: str | None, now: float
    ) -> float:
        wait = attempt.limiter_for(credential).expected_wait(attempt.cost)
        until = self._cooling.get((credential.name, group))
        if until is not None:
            if until > now:
                # max, not a sum: the bucket is held for the same time, so its wait
                # already contains the cooldown whenever the hold applies to this cost.
                wait = max(wait, until - now)
            else:
                del self._cooling[(credential.name, group)]
        return wait

    # -- outcomes ------------------------------------------------------------------------

    def _retire(self, attempt: Attempt, name: str, error: ErrorInfo) -> Decision:
        if name not in self._retired:
            reason = f"{error.kind.value} (HTTP {error.status}"
            reason += f", {error.code})" if error.code else ")"
            self._retired[name] = reason
            for key in [key for key in self._cooling if key[0] == name]:
                del self._cooling[key]
            self._cooling_reason.pop(name, None)
            attempt.telemetry.emit(
                Event(
                    "key_retired",
                    key=name,
                    model=attempt.model,
                    attempt=max(attempt.number, 1),
                    status=error.status,
                    error_kind=error.kind.value,
                    detail=f"retired: {reason}",
                )
            )
        if len(self._retired) < len(self._credentials):
            return Decision.retry(after=0.0, reason=f"{name} retired; moved to another key")
        return Decision.give_up(
            error=CredentialsExhaustedError(self._retired), reason="every credential is retired"
        )

    def _cool(self, attempt: Attempt, name: str, error: ErrorInfo) -> Decision | None:
        # The learner has held this key's bucket for the named wait (bounded); the key
        # cools as long, or ``cooldown`` when the server named nothing.
        seconds = attempt.held if attempt.held > 0 else self._cooldown
        now = attempt.clock()
        group = attempt.pool.group(attempt.model)
        key = (name, group)
        self._cooling[key] = max(self._cooling.get(key, -math.inf), now + seconds)
        self._cooling_reason[name] = f"rate limited (429) on {group or 'no model'}"
        # One free move per credential and call: past that, the next strategy's bounds
        # decide, so a call cannot bounce between rate-limited keys forever.
        if attempt.number < len(self._credentials) and self._free_now(attempt, name, group, now):
            return Decision.retry(after=0.0, reason=f"429 on {name}; moved to another key")
        return None

    def _free_now(self, attempt: Attempt, exclude: str, group: str | None, now: float) -> bool:
        """Whether some other credential could serve the call without waiting."""
        for credential in self._credentials:
            if credential.name == exclude or credential.name in self._retired:
                continue
            if self._wait(attempt, credential, group, now) <= _TIE:
                return True
        return False

    # -- reporting -----------------------------------------------------------------------

    def statistics(self, now: float | None = None) -> tuple[CredentialState, ...]:
        """Each credential's name, state and reason, in the order given.

        ``now`` defaults to the clock of the last attempt seen; when it cannot be read
        (outside the event loop with a loop clock), nothing counts as cooling.
        """
        if now is None and self._clock is not None:
            try:
                now = self._clock()
            except RuntimeError:
                now = None
        states = []
        for credential in self._credentials:
            name = credential.name
            if name in self._retired:
                states.append(CredentialState(name, "retired", self._retired[name]))
                continue
            left = 0.0
            if now is not None:
                left = max(
                    (until - now for (who, _), until in self._cooling.items() if who == name),
                    default=0.0,
                )
            if left > 0:
                reason = self._cooling_reason.get(name)
                states.append(CredentialState(name, "cooling", reason, left))
            else:
                states.append(CredentialState(name, "active"))
        return tuple(states)

    def __repr__(self) -> str:
        names = ", ".join(repr(c.name) for c in self._credentials)
        return f"KeyRotation([{names}], cooldown={self._cooldown:g})"


def _model_access(error: ErrorInfo) -> bool:
    """A 403 about one model ("does not have access to model ...") says nothing about
    the key's other models: it is not a reason to retire the key."""
    if error.status != 403:
        return False
    text = f"{error.code or ''} {error.message or ''}".lower()
    return "model" in text
