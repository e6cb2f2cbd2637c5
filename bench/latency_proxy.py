"""A TCP proxy that adds a round-trip delay, so local test servers behave like
stores a network hop away. Each chunk is held for half the round trip in each
direction; chunks keep their order.

    with LatencyProxy("127.0.0.1", upstream_port, rtt=0.020) as proxy:
        url = f"http://127.0.0.1:{proxy.port}"

Only loopback addresses: it listens on 127.0.0.1 and forwards to the given
upstream, which callers keep on 127.0.0.1 too.
"""

from __future__ import annotations

import asyncio
import threading


class LoopProxy:
    """A TCP listener on 127.0.0.1 served by an asyncio loop in a thread.
    Subclasses implement ``_handle``; ``_before_stop`` runs on the loop just
    before it stops. Shared by ``LatencyProxy`` and the tests' fault proxy."""

    name = "proxy"

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    def __enter__(self):
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{self.name} did not start")
        return self

    def __exit__(self, *exc) -> None:
        def stop() -> None:
            self._before_stop()
            # Cancel the open connections' tasks first, so none is destroyed pending.
            for task in asyncio.all_tasks(self._loop):
                task.cancel()
            self._loop.call_later(0.05, self._loop.stop)

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(10)

    def _before_stop(self) -> None:
        return None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()
            self._loop.close()

    async def _handle(self, client_r, client_w) -> None:
        raise NotImplementedError


class LatencyProxy(LoopProxy):
    name = "latency proxy"

    def __init__(self, upstream_host: str, upstream_port: int, rtt: float = 0.020) -> None:
        super().__init__(upstream_host, upstream_port)
        self.delay = rtt / 2

    async def _handle(self, client_r, client_w) -> None:
        self.connections += 1
        try:
            up_r, up_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(self._pipe(client_r, up_w), self._pipe(up_r, client_w),
                             return_exceptions=True)

    async def _pipe(self, reader, writer) -> None:
        # A queue with a per-chunk due time keeps a constant one-way delay
        # without serialising chunks behind each other's sleeps.
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    break
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(65536)
                queue.put_nowait((loop.time() + self.delay, data or None))
                if not data:
                    break
            await sender
        except (ConnectionError, OSError):
            sender.cancel()
        finally:
            try:
                writer.close()
            except Exception:
                pass
