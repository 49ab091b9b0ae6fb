"""The data plane's per-process model map (dataplane.registry): a model created just before a
request is found even when the map was loaded a moment earlier, and a flood of unknown model
names does not turn into a flood of database loads."""

from __future__ import annotations

import asyncio
import time

from dataplane.registry import _TtlCache


class _Catalog:
    """A stand-in for the models table: `names`, and how many times it was loaded."""

    def __init__(self) -> None:
        self.names: set[str] = {"mock/echo"}
        self.loads = 0

    def load(self) -> dict[str, bool]:
        self.loads += 1
        return dict.fromkeys(self.names, True)


def test_a_model_created_after_the_last_load_is_found_by_the_next_request():
    catalog = _Catalog()
    cache = _TtlCache(catalog.load, ttl=60.0)

    async def scenario() -> tuple[dict, dict]:
        first = await cache.get(())  # loaded now, fresh for a minute
        catalog.names.add("new-model")  # created in the console right after
        asked_at = time.monotonic()
        again = await cache.fresh_since((), asked_at, min_interval=0.01)
        return first, again

    first, again = asyncio.run(scenario())
    assert "new-model" not in first
    assert "new-model" in again


def test_a_flood_of_unknown_names_shares_one_load():
    catalog = _Catalog()
    cache = _TtlCache(catalog.load, ttl=60.0)

    async def scenario() -> list[dict]:
        await cache.get(())
        asked_at = time.monotonic()
        return await asyncio.gather(*(cache.fresh_since((), asked_at, min_interval=0.01) for _ in range(50)))

    answers = asyncio.run(scenario())
    assert all("no-such-model" not in answer for answer in answers)
    assert catalog.loads == 2  # the first load, then one shared by all fifty misses
