"""The parts beneath `wrap` and `RateLimiter`, for those who build on them.

* `Dimension`: one bucket of a `Limits` (``Limits.dimensions()``), and `Bucket`, the
  arithmetic of several of them at once.
* `Learner`: the one owner of every correction of the buckets from what the server
  answers (named waits, slow start, learned paces, the cap on calls in flight);
  ``wrap(..., learner=Learner(...))`` tunes it. Strategies only decide.
* `Limiter` and `Reservation`: the protocols every backend's limiter implements.
* `DEFAULT_LANES` and `current_lane`: the priority lanes a limiter has unless told,
  and the lane the calling code is in (``with ratelimit_llm.lane(...)``).
"""

from __future__ import annotations

from ._bucket import Bucket
from ._interface import Limiter, Reservation
from ._learner import Learner
from ._line import DEFAULT_LANES, current_lane
from ._types import Dimension

__all__ = [
    "DEFAULT_LANES",
    "Bucket",
    "Dimension",
    "Learner",
    "Limiter",
    "Reservation",
    "current_lane",
]
