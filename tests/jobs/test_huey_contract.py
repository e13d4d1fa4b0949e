"""What SynthBox relies on inside huey (pinned to one minor version in pyproject.toml): an
upgrade that changes it fails here, loudly, instead of in a broker at run time."""

from __future__ import annotations

import redis
from huey.storage import RedisStorage

from synthbox.jobs.broker import ClientRedisStorage


def test_our_redis_storage_sets_what_hueys_sets():
    """ClientRedisStorage builds its own client instead of calling RedisStorage.__init__:
    it must set every attribute huey's does, with the same key names."""
    client = redis.Redis(host="127.0.0.1", port=6379)  # connects only when used
    theirs = vars(RedisStorage("contract", connection_pool=client.connection_pool))
    ours = vars(ClientRedisStorage("contract", client))
    assert set(theirs) - {"_pop"} <= set(ours), set(theirs) - set(ours)
    for name in ("name", "queue_key", "schedule_key", "result_key", "counter_key",
                 "notify_prefix", "notify_result", "blocking"):
        assert ours[name] == theirs[name], name
