"""The data plane in-process (httpx's ASGI transport), for tests that move the clock."""

from __future__ import annotations

import asyncio

import httpx

from dataplane.app import ProxyApp


class InProcessGateway:
    """One ProxyApp (its own caches and counters) driven from synchronous tests.

    Each call runs on one long-lived event loop, so the app's background tasks (usage writer,
    counter settling) keep running between calls.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.app = ProxyApp()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://aigw")

    def _run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def settle(self) -> None:
        """Wait for queued usage events and counter adjustments to be written."""

        async def drain():
            for _ in range(3):
                await asyncio.gather(*list(self.app._background), *list(self.app.limits._background))
                await self.app.recorder.flush()

        self._run(drain())

    def chat(self, secret: str, **body) -> httpx.Response:
        body.setdefault("messages", [{"role": "user", "content": "Hello there, gateway!"}])
        response = self._run(
            self.client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {secret}"})
        )
        self.settle()
        return response

    def get(self, path: str, secret: str) -> httpx.Response:
        return self._run(self.client.get(path, headers={"authorization": f"Bearer {secret}"}))

    def close(self) -> None:
        from asgiref.sync import sync_to_async
        from django.db import connections

        self.settle()
        self._run(self.client.aclose())
        self._run(self.app.close())
        # The app's database work ran in asgiref's worker thread: close that thread's connections.
        self._run(sync_to_async(connections.close_all, thread_sensitive=True)())
        self.loop.close()
