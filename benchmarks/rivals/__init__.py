"""The rival libraries as benchmark contenders, for ``benchmarks/run.py``.

They live here, outside the ``ratelimit_llm`` package, because their libraries are not
ratelimit-llm's dependencies (and the package never imports this folder):

* ``sdk+aiolimiter``: the openai SDK paced by aiolimiter on requests per minute;
* ``cookbook``: the OpenAI cookbook's parallel-request script, re-implemented;
* ``token-throttle``: the token-throttle package, run in its own Python >= 3.12
  interpreter (``benchmarks/setup_token_throttle.sh``); skipped when there is none.
"""

from __future__ import annotations

from ratelimit_llm.bench import Contender

from ._aiolimiter import SDKAioLimiter
from ._cookbook import Cookbook
from ._token_throttle import TokenThrottle

__all__ = ["Cookbook", "SDKAioLimiter", "TokenThrottle", "rival_contenders"]


def rival_contenders() -> list[Contender]:
    """One fresh instance of each rival, in the order the tables show them."""
    return [SDKAioLimiter(), Cookbook(), TokenThrottle()]
