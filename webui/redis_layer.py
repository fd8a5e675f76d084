"""The Redis channel layer, with a cancelled receive that really ends.

channels-redis waits for messages with BZPOPMIN calls that time out every few seconds, each
after a Lua call that puts back messages a cancelled receive had popped. redis-py lets a
cancellation that arrives during a command's reply go by: the command returns normally and
the task carries on, its cancellation still pending. Seen here:

- arriving during the Lua call, it left the receive blocked in BZPOPMIN until that timed out
  (5 s for every socket closed in-process, every listener stopped);
- arriving as BZPOPMIN timed out, the read counted as "nothing yet" and channels-redis read
  again, for ever: about one receive in twenty cancelled near that moment never ended, and a
  consumer closing, a listener stopping or a process shutting down waited on it without end.

This layer does what channels-redis does and, after each of those two calls, raises a
cancellation still pending. A message that did arrive is returned as usual (it is safe in the
backup queue either way). channels-redis is pinned in requirements.txt: this overrides one of
its internal methods.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer

# Move what a receive popped but never handed over (the backup set) back into the channel's
# queue, scores (send times) kept, then empty the backup: KEYS are not used, the names come
# as ARGV as channels-redis passes them.
RESTORE_BACKUP = """
local popped = redis.call('ZRANGE', ARGV[2], 0, -1, 'WITHSCORES')
for i = 1, #popped, 2 do
    redis.call('ZADD', ARGV[1], popped[i + 1], popped[i])
end
redis.call('DEL', ARGV[2])
"""


def _raise_if_cancelled() -> None:
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class RedisChannelLayer(BaseRedisChannelLayer):
    async def _brpop_with_clean(self, index: int, channel: str, timeout: Any) -> Any:
        """Pop the channel queue's oldest message, blocking up to `timeout`; None if none came."""
        backup = self._backup_channel_name(channel)
        connection = self.connection(index)
        await connection.eval(RESTORE_BACKUP, 0, channel, backup)
        _raise_if_cancelled()
        popped = await connection.bzpopmin(channel, timeout=timeout)
        if popped is None:
            _raise_if_cancelled()
            return None
        _key, member, score = popped
        await connection.zadd(backup, {member: float(score)})
        return member
