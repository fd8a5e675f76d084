"""The Redis channel layer: a cancelled receive ends (channels-redis could read on for ever)."""

from __future__ import annotations

import asyncio
import random

import pytest
from django.conf import settings

from tests.conftest import require
from webui.redis_layer import RedisChannelLayer

pytestmark = pytest.mark.engines


async def cancelled_receives_left_running(layer_class: type, count: int) -> int:
    """Cancel `count` receives at random moments of their reads; return how many did not end.

    With channels-redis's own layer this finds stuck receives within a few dozen tries (and the
    test then hangs at its loop's end, until pytest-timeout reports it).
    """
    layer = layer_class(hosts=[{"address": settings.REDIS_URL}], prefix=f"cancel{random.random()}")
    layer.brpop_timeout = 0.002  # reads time out all the time: a cancel often meets one
    stuck = 0
    for _ in range(count):
        receive = asyncio.ensure_future(layer.receive(await layer.new_channel()))
        await asyncio.sleep(random.uniform(0, 0.02))
        receive.cancel()
        done, _pending = await asyncio.wait([receive], timeout=1)
        stuck += not done
    await layer.flush()
    return stuck


async def test_it_ends_every_cancelled_receive():
    require(bool(settings.REDIS_URL), "Redis (REDIS_URL=redis://…)")
    assert await cancelled_receives_left_running(RedisChannelLayer, 200) == 0


async def test_it_ends_a_receive_cancelled_as_it_starts_at_once():
    """A socket closing right after it opened: its receive ends now, not at the next timeout."""
    require(bool(settings.REDIS_URL), "Redis (REDIS_URL=redis://…)")
    loop = asyncio.get_running_loop()
    slowest = 0.0
    for steps in range(24):
        # A new layer each time: the first receive also opens the connection.
        layer = RedisChannelLayer(hosts=[{"address": settings.REDIS_URL}], prefix=f"cancel{random.random()}")
        receive = asyncio.ensure_future(layer.receive(await layer.new_channel()))
        for _ in range(steps):  # cancel at each of the receive's first steps
            await asyncio.sleep(0)
        started = loop.time()
        receive.cancel()
        await asyncio.wait([receive], timeout=layer.brpop_timeout + 1)
        slowest = max(slowest, loop.time() - started)
        await layer.flush()
    assert slowest < 1.0
