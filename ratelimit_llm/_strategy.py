"""The strategy interface: what to do before a send, and after an answer or an error.

A strategy is a small object with two methods, both reading one state object, the
`Attempt` (the idea is tenacity's ``RetryCallState``: the interface never has to grow)::

    async def before_send(self, attempt) -> None
        # may wait (FixedDelay), may choose the credential (KeyRotation)
    def after_response(self, attempt) -> Decision | None
        # may decide: Decision.retry(after=seconds) or Decision.give_up(error=None)

The transport around it does the rest: picks the bucket for the chosen credential and
model, acquires the estimated cost, sends, hands the answer to the `Learner` (which
alone corrects the buckets: headers, named waits, slow start, learned paces), settles
the reservation, and sleeps before a retry. Strategies compose with ``+``:
``KeyRotation(keys) + AdaptiveBackoff()`` calls both, in that order, and takes the
first decision made; every member still sees every outcome.

A composition without a retry policy is followed by a default `AdaptiveBackoff` (see
`Strategy.decides_retries`); when nothing decides, a success is returned and a failure
is handed to the caller as it came (the SDK turns it into its own ``RateLimitError``).

Writing your own: subclass `Strategy`, override one or both hooks, read the fields of
`Attempt` (``docs/strategies.md`` lists them), return a `Decision` or ``None``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ._classify import ErrorInfo, ErrorKind
from ._credentials import Credential
from ._headers import RateLimitSnapshot
from ._interface import Limiter, Reservation
from ._providers import Provider
from ._types import Cost

if TYPE_CHECKING:
    from ._pool import LimiterPool
    from ._telemetry import Telemetry

__all__ = ["Attempt", "Decision", "Strategy", "compose", "retry_kind"]


@dataclass(eq=False)
class Attempt:
    """One call, as it passes through its attempts. Strategies read it; the few fields
    they may set are marked so."""

    #: The model named in the request body (``None`` for calls without one).
    model: str | None
    #: The request path, e.g. ``/v1/chat/completions``.
    endpoint: str
    #: The estimated cost charged before each attempt.
    cost: Cost
    #: Clock time when the first attempt began.
    started: float
    #: The clock the limiters use.
    clock: Callable[[], float] = field(repr=False)
    #: Where the buckets for each credential and model come from.
    pool: LimiterPool = field(repr=False)
    telemetry: Telemetry = field(repr=False)
    #: The credential the client itself was built with (``None`` if it had no key).
    default_credential: Credential | None = field(default=None, repr=False)
    #: 0 before the first send, then 1, 2, ... (a strategy's before_send sees the
    #: number of the attempt about to be made).
    number: int = 0
    #: The credential for this attempt. KeyRotation sets it in ``before_send``;
    #: when nobody does, the client's own is used. (settable)
    credential: Credential | None = None
    #: The bucket this attempt was charged to (set by the transport).
    limiter: Limiter | None = field(default=None, repr=False)
    reservation: Reservation | None = field(default=None, repr=False)
    #: Whether the call creates something that must exist once (a Batch API job): it is
    #: then sent again only when the server certainly did not act on it (a 429, or a
    #: connection that never opened), and otherwise left to the caller to look up.
    creates: bool = False
    #: The outcome of the last attempt.
    status: int | None = None
    error: ErrorInfo | None = None
    exception: BaseException | None = field(default=None, repr=False)
    snapshot: RateLimitSnapshot | None = field(default=None, repr=False)
    #: Seconds the learner held this attempt's bucket after its answer (a 429's named
    #: wait, bounded by `Learner.max_hold`); 0 when it held nothing.
    held: float = 0.0
    #: The most attempts this call may make, whatever the strategy decides: the budget
    #: of a client made with ``with_options(max_retries=N)`` (N + 1), or 1 for a retry
    #: the SDK itself makes; ``None`` leaves it to the strategy.
    max_attempts: int | None = None
    #: A stream that will report no usage (asked without ``include_usage``): it is
    #: settled from what streamed instead.
    streams_without_usage: bool = False
    #: Retries made so far for this call, by kind of failure (see `retry_kind`);
    #: counted by the transport as it retries.
    retried: dict[str, int] = field(default_factory=dict)
    #: The provider whose dialect the answers are read in (named, or recognised from
    #: the host); ``None`` lets each answer's headers tell.
    provider: Provider | None = None
    #: The priority lane the call waits in (`ratelimit_llm.lane`); ``None``: "default".
    lane: str | None = None
    #: The answer is a stream being passed through: the call is over only at its end.
    streaming: bool = False
    #: Seconds from this attempt's send to its answer's headers (``None`` before).
    latency: float | None = None
    #: Calls in flight on this attempt's bucket when it was sent, itself included
    #: (``None`` unless the limits count calls in flight).
    in_flight: float | None = None

    @property
    def succeeded(self) -> bool:
        """Whether the last attempt got a 2xx answer."""
        return self.status is not None and 200 <= self.status < 300

    @property
    def elapsed(self) -> float:
        """Seconds since the first attempt began."""
        return self.clock() - self.started

    @property
    def key_name(self) -> str:
        """The redacted name of this attempt's credential."""
        credential = self.credential or self.default_credential
        return credential.name if credential is not None else "<no key>"

    def limiter_for(self, credential: Credential | None) -> Limiter:
        """The bucket ``credential`` would use for this call's model."""
        credential = credential or self.default_credential
        name = credential.name if credential is not None else "<no key>"
        return self.pool.get(name, self.model, provider=self.provider)


_KIND_OF_RETRY: dict[ErrorKind, str] = {
    ErrorKind.RATE_LIMIT: "throttling",
    ErrorKind.BUDGET_WAIT: "throttling",
    ErrorKind.CONCURRENCY: "concurrency",
    ErrorKind.RESOURCE_UNAVAILABLE: "flex",
    ErrorKind.INSUFFICIENT_QUOTA: "quota",
    ErrorKind.REQUEST_TOO_LARGE: "too_large",
}


def retry_kind(error: ErrorInfo | None) -> str:
    """The retry budget a failure draws on: ``"throttling"``, ``"concurrency"``,
    ``"overload"`` (server errors of every other kind), ``"flex"``, ``"quota"``,
    ``"too_large"``, or ``"connection"`` when there was no answer at all."""
    if error is None:
        return "connection"
    return _KIND_OF_RETRY.get(error.kind, "overload")


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after an attempt failed (or, rarely, succeeded)."""

    action: Literal["retry", "give_up"]
    #: For "retry": seconds to pause before the next attempt (after the bucket's own wait).
    delay: float = 0.0
    #: For "give_up": raise this instead of handing back the last answer.
    error: BaseException | None = None
    #: A few words for logs and events.
    reason: str = ""

    @classmethod
    def retry(cls, after: float = 0.0, reason: str = "") -> Decision:
        """Try again, ``after`` seconds from now (plus whatever the bucket imposes)."""
        return cls("retry", max(0.0, after), None, reason)

    @classmethod
    def give_up(cls, error: BaseException | None = None, reason: str = "") -> Decision:
        """Stop: hand back the last answer, or raise ``error`` if one is given."""
        return cls("give_up", 0.0, error, reason)


class Strategy:
    """Base class of strategies: both hooks do nothing; override what you need.

    A strategy decides; it never writes to a bucket (the `Learner` does, before the
    strategy sees the answer). It may read every field of the `Attempt`.
    """

    #: Whether this strategy decides about retries. The transport follows a strategy
    #: that does not with a default `AdaptiveBackoff`, so that a rate limit is retried
    #: whatever else is composed.
    decides_retries: bool = False

    async def before_send(self, attempt: Attempt) -> None:
        """Called before each attempt, before the bucket is asked. May wait."""
        return None

    def after_response(self, attempt: Attempt) -> Decision | None:
        """Called after each attempt; ``None`` leaves the decision to others."""
        return None

    def __add__(self, other: Strategy) -> Strategy:
        if not isinstance(other, Strategy):
            return NotImplemented
        return _Composite((*_members(self), *_members(other)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _Composite(Strategy):
    """Several strategies in order: all are consulted, the first decision wins."""

    __slots__ = ("members",)

    def __init__(self, members: tuple[Strategy, ...]) -> None:
        self.members = members
        self.decides_retries = any(member.decides_retries for member in members)

    async def before_send(self, attempt: Attempt) -> None:
        for member in self.members:
            await member.before_send(attempt)

    def after_response(self, attempt: Attempt) -> Decision | None:
        chosen: Decision | None = None
        for member in self.members:
            decision = member.after_response(attempt)
            if chosen is None:
                chosen = decision
        return chosen

    def __repr__(self) -> str:
        return " + ".join(repr(member) for member in self.members)


def _members(strategy: Strategy) -> tuple[Strategy, ...]:
    return strategy.members if isinstance(strategy, _Composite) else (strategy,)


def compose(*strategies: Strategy) -> Strategy:
    """The same as ``a + b + c``; with no argument, a strategy that does nothing."""
    if not strategies:
        return Strategy()
    combined = strategies[0]
    for strategy in strategies[1:]:
        combined = combined + strategy
    return combined
