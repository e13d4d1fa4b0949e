"""A rate limit per queue that holds across every process sharing the backend.

A sliding-window log: each claim adds an entry stamped with the claim's time (which
is also the job's recorded start), and a claim is allowed only while fewer than
`max` entries are no older than the window. With Redis the log is a sorted set
changed by one Lua script; without Redis it is the `rate_hit` table
(JobStore.claim_limited).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

_ACQUIRE = """
local key, now, window, limit, want, tag =
  KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
-- keep a second of slack so a caller whose clock read lags another's still sees its entries
redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. (now - window - 1))
local used = redis.call('ZCOUNT', key, now - window, '+inf')
local grant = math.min(want, limit - used)
if grant <= 0 then
  local oldest = redis.call('ZRANGEBYSCORE', key, now - window, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  return {0, oldest[2] or tostring(now)}
end
for i = 1, grant do redis.call('ZADD', key, now, tag .. ':' .. i) end
redis.call('PEXPIRE', key, math.ceil((window + 2) * 1000))
return {grant, '0'}
"""


class RedisRateLimiter:
    def __init__(self, client: Any, namespace: str = "synthbox"):
        self.client = client
        self.namespace = namespace
        self._acquire = client.register_script(_ACQUIRE)
        self._tags = itertools.count()
        self._prefix = f"{os.getpid()}-{id(self):x}"

    def key(self, queue: str) -> str:
        return f"{self.namespace}.ratelimit.{{{self.namespace}.{queue}}}"

    def acquire(self, queue: str, want: int, limit: int, window: float,
                now: float) -> tuple[int, str, float]:
        """Take up to `want` slots at time `now`: (granted, tag, seconds until one frees)."""
        tag = f"{self._prefix}-{next(self._tags)}"
        granted, oldest = self._acquire(keys=[self.key(queue)],
                                        args=[repr(now), window, limit, want, tag])
        granted = int(granted)
        wait = 0.0 if granted else max(float(oldest) + window - now, 0.001)
        return granted, tag, wait

    def release(self, queue: str, tag: str, granted: int, used: int) -> None:
        """Give back the slots a claim did not use."""
        if used < granted:
            self.client.zrem(self.key(queue),
                             *[f"{tag}:{i}" for i in range(used + 1, granted + 1)])
