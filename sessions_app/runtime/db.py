"""Database work of a host's turns, on a bounded pool of threads.

asgiref's ``sync_to_async`` runs every call of a process on one thread outside a request: a
hundred turns would queue their checkpoints behind each other. A host gives its turns a few
threads of their own instead, and each call hands its connection back when it is done (to
Django's connection pool on PostgreSQL), so the connection count stays bounded too.

The threads carry their host's outbox: what a call broadcasts once it commits goes out through
it (``broadcast.sending_through``), whoever made the call.
"""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import close_old_connections

from sessions_app.core import broadcast

T = TypeVar("T")


class DatabaseThreads:
    def __init__(self, size: int, name: str, *, outbox: broadcast.Outbox):
        self._executor = ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)
        self._outbox = outbox

    async def __call__(self, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._call_and_release, func, args, kwargs
        )

    async def close(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    def _call_and_release(self, func: Callable[..., T], args, kwargs) -> T:
        try:
            with broadcast.sending_through(self._outbox):
                return func(*args, **kwargs)
        finally:
            close_old_connections()
