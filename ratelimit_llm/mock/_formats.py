"""String ``format`` values the generator writes: one seeded example per format name.

Each is valid for its format as JSON Schema validators and pydantic read it (a date-time
with a ``Z`` offset, a version 4 UUID, documentation IP ranges, ``example.com`` hosts).
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Callable

from ._text import fake_words

__all__ = ["STRING_FORMATS"]


def _date(rng: random.Random) -> str:
    return f"{rng.randint(2000, 2030):04d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _time(rng: random.Random) -> str:
    return f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z"


def _word(rng: random.Random) -> str:
    return fake_words(rng, 1)


STRING_FORMATS: dict[str, Callable[[random.Random], str]] = {
    "date": _date,
    "date-time": lambda rng: f"{_date(rng)}T{_time(rng)}",
    "time": _time,
    "duration": lambda rng: f"P{rng.randint(0, 9)}DT{rng.randint(1, 23)}H",
    "email": lambda rng: f"{_word(rng)}.{_word(rng)}@example.com",
    "idn-email": lambda rng: f"{_word(rng)}@example.com",
    "uri": lambda rng: f"https://example.com/{_word(rng)}",
    "url": lambda rng: f"https://example.com/{_word(rng)}",
    "iri": lambda rng: f"https://example.com/{_word(rng)}",
    "uri-reference": lambda rng: f"/{_word(rng)}/{_word(rng)}",
    "iri-reference": lambda rng: f"/{_word(rng)}",
    "hostname": lambda rng: f"{_word(rng)}.example.com",
    "idn-hostname": lambda rng: f"{_word(rng)}.example.com",
    "ipv4": lambda rng: f"192.0.2.{rng.randint(1, 254)}",
    "ipv6": lambda rng: f"2001:db8::{rng.randint(1, 0xFFFF):x}",
    "ipvanyaddress": lambda rng: f"192.0.2.{rng.randint(1, 254)}",
    "ipvanyinterface": lambda rng: f"192.0.2.{rng.randint(1, 254)}/24",
    "ipvanynetwork": lambda rng: "192.0.2.0/24",
    "uuid": lambda rng: str(uuid.UUID(int=rng.getrandbits(128), version=4)),
    "base64": lambda rng: base64.b64encode(_word(rng).encode()).decode(),
    "base64url": lambda rng: base64.urlsafe_b64encode(_word(rng).encode()).decode(),
    "binary": _word,
    "password": _word,
    "path": lambda rng: f"/tmp/{_word(rng)}",
    "json-pointer": lambda rng: f"/{_word(rng)}",
    "regex": lambda rng: f"^{_word(rng)}$",
}
