"""Who else has a mention open right now, and whether they are typing a reply.

Kept in Redis, not PostgreSQL: it is a heartbeat every few seconds per open page, worthless
a minute later, and must never slow the database down. One hash per mention, one field per
person, each holding "state:unix time"; the key expires when everyone has left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings

# A page beats every 5 s; two missed beats and the person is gone.
PRESENCE_TTL_SECONDS = 12
STATES = ("viewing", "drafting")


@dataclass(frozen=True, slots=True)
class Presence:
    username: str
    state: str

    @property
    def is_drafting(self) -> bool:
        return self.state == "drafting"


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)


def _key(mention_id: int) -> str:
    return f"earshot:presence:mention:{mention_id}"


def presence_beat(*, mention_id: int, username: str, state: str, now: float | None = None) -> None:
    """Record that `username` has the mention open (viewing or drafting) at this moment."""
    state = state if state in STATES else "viewing"
    now = time.time() if now is None else now
    key = _key(mention_id)
    with _redis().pipeline() as pipe:
        pipe.hset(key, username, f"{state}:{now:.0f}")
        pipe.expire(key, PRESENCE_TTL_SECONDS)
        pipe.execute()


def presence_leave(*, mention_id: int, username: str) -> None:
    _redis().hdel(_key(mention_id), username)


def presence_others(*, mention_id: int, username: str, now: float | None = None) -> list[Presence]:
    """Everyone but `username` whose last beat is recent, drafting ones first."""
    now = time.time() if now is None else now
    others = []
    for who, value in _redis().hgetall(_key(mention_id)).items():
        state, _, seen = value.partition(":")
        if who != username and now - float(seen or 0) <= PRESENCE_TTL_SECONDS:
            others.append(Presence(username=who, state=state))
    return sorted(others, key=lambda p: (not p.is_drafting, p.username))
