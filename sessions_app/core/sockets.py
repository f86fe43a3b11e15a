"""A user's open websockets, counted in the database so that every web process sees them all
(``MAX_SOCKETS_PER_USER``).

Not in the cache: Django's default cache is each process's own memory, so with several daphne
processes a user could open the cap's number of sockets in each. The channel layer keeps its
groups but offers no way to count their members.

A socket's row is written before the socket is accepted and deleted when it closes. A web
process that dies without closing its sockets (killed, or its machine lost) leaves rows behind:
each row counts only until ``alive_until``, which the process holding the socket pushes forward
every ``REFRESH_SECONDS`` for all its sockets in one UPDATE. A dead process's sockets therefore
stop counting within ``ALIVE_SECONDS``; until then its users may find fewer sockets free (a page
reconnects on its own and gets in once they expire).
"""

import asyncio
import logging
import weakref
from datetime import timedelta

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from sessions_app.models import OpenSocket

logger = logging.getLogger(__name__)

ALIVE_SECONDS = 60.0
REFRESH_SECONDS = 20.0


def socket_open(*, user_id: int, channel_name: str) -> bool:
    """Count one more open socket of the user; False (nothing written) at the cap.

    The user's row is locked so that two sockets opening at once in two processes cannot both
    take the last place on PostgreSQL; SQLite runs one write transaction at a time anyway.
    """
    now = timezone.now()
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(pk=user_id).values_list("pk").first()
        mine = OpenSocket.objects.filter(user_id=user_id)
        mine.filter(alive_until__lt=now).delete()
        if mine.count() >= settings.MAX_SOCKETS_PER_USER:
            return False
        OpenSocket.objects.create(
            user_id=user_id,
            channel_name=channel_name,
            alive_until=now + timedelta(seconds=ALIVE_SECONDS),
        )
        return True


def socket_closed(*, channel_name: str) -> None:
    OpenSocket.objects.filter(channel_name=channel_name).delete()


def sockets_keep_alive(*, channel_names: list[str]) -> None:
    OpenSocket.objects.filter(channel_name__in=channel_names).update(
        alive_until=timezone.now() + timedelta(seconds=ALIVE_SECONDS)
    )


class _Keeper:
    """The sockets one event loop (one web process) holds, and the task that keeps them alive."""

    def __init__(self) -> None:
        self.channel_names: set[str] = set()
        self.task: asyncio.Task | None = None

    def add(self, channel_name: str) -> None:
        self.channel_names.add(channel_name)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._refresh_while_open())

    async def _refresh_while_open(self) -> None:
        try:
            while self.channel_names:
                await asyncio.sleep(REFRESH_SECONDS)
                try:
                    await database_sync_to_async(sockets_keep_alive)(
                        channel_names=list(self.channel_names)
                    )
                except Exception:
                    # The next refresh tries again; the rows outlive a few failed ones.
                    logger.warning("open sockets: refresh failed", exc_info=True)
        finally:
            # The task holds its loop: dropped, a closed loop's keeper can go with it.
            self.task = None


_keepers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Keeper]" = (
    weakref.WeakKeyDictionary()
)


async def opened(*, user_id: int, channel_name: str) -> bool:
    """Count the socket (see ``socket_open``) and keep it counted while it stays open."""
    if not await database_sync_to_async(socket_open)(user_id=user_id, channel_name=channel_name):
        return False
    keeper = _keepers.setdefault(asyncio.get_running_loop(), _Keeper())
    keeper.add(channel_name)
    return True


async def closed(*, channel_name: str) -> None:
    keeper = _keepers.get(asyncio.get_running_loop())
    if keeper is not None:
        keeper.channel_names.discard(channel_name)
    await database_sync_to_async(socket_closed)(channel_name=channel_name)
