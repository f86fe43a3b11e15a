"""A django-q2 worker process as a turn host, and how it ends.

django-q2 stays the delivery engine: its worker process takes a ``run_turn`` task and calls
``deliver``, which hands the turn to the process's ``TurnHost`` (an event loop on a thread of its
own) and returns once the turn is running. A full host takes no more work: a turn delivered to
it goes back to the broker, still queued, for another process, and the host waits a moment for
a free slot before it takes the next delivery. The lease, heartbeat, reaper and redelivery stay
the durability model, whatever django-q2 acknowledges.

Ending, without ever killing a process that hosts turns:
- SIGTERM or SIGINT (to the process, or to its whole group as orchestrators and terminals send
  them) drains the host: hosted turns get ``AGENT_DRAIN_TIMEOUT`` to finish, then are handed
  back to the queue or stopped (``AGENT_DRAIN_MODE``). The cluster's own stop tells its workers
  the same way (``DrainingSentinel``).
- When django-q2 ends the task loop by itself (``recycle``, ``max_rss``), the host takes no more
  turns and the process lives until its hosted turns have ended (``hosting_worker``).
"""

import asyncio
import logging
import os
import queue
import signal
import threading
import time
import uuid
from multiprocessing import Value

from django.conf import settings
from django.db import connections
from django_q.cluster import Sentinel, get_mp_context
from django_q.conf import Conf
from django_q.worker import worker as django_q_worker

from agentproj import metrics, tracing
from sessions_app.runtime.host import TurnHost

logger = logging.getLogger(__name__)

HOSTED = "hosted"
SKIPPED = "skipped"
# The turn is still queued and goes back to the broker, for another process: this host was
# full, or it drained for a shutdown.
FULL = "full"
REFUSED = "refused"
# How long a full host waits for a free slot before it takes the next delivery. Meanwhile the
# turns it sent back stay in the broker for hosts with room (this host's own fetcher, blocked
# behind it, cannot take them back at once).
FULL_HOST_WAIT = 1.0
SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# How often an idle worker looks for a task (LightlyLockedQueue).
TASK_QUEUE_POLL = 0.02


class ProcessHost:
    _current: "ProcessHost | None" = None
    _create_lock = threading.Lock()

    @classmethod
    def current(cls) -> "ProcessHost":
        with cls._create_lock:
            if cls._current is None:
                cls._current = cls(capacity=settings.AGENT_TURNS_PER_WORKER)
                cls._current.start()
            return cls._current

    @classmethod
    def close_current(cls) -> None:
        """The worker's task loop has ended: let this process's host finish its turns (or drain
        them, if a shutdown signal arrived) before the process exits."""
        host = cls._current
        if host is not None:
            host.request_finish()
            host.join()

    def __init__(self, *, capacity: int):
        self.capacity = capacity
        self._in_use = 0
        self._slots = threading.Condition()
        self._taking_turns = True
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._serve_forever, name="turn-host", daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.host: TurnHost | None = None

    def start(self) -> None:
        self._thread.start()
        self._started.wait()
        if self.host is None:
            raise RuntimeError("the turn host could not start; see the log")
        if threading.current_thread() is threading.main_thread():
            for signum in SHUTDOWN_SIGNALS:
                signal.signal(signum, self._on_shutdown_signal)

    def join(self) -> None:
        self._thread.join()

    def deliver(self, turn_id: int) -> str:
        """Called on the worker's task thread: run the turn here if this host may."""
        with self._slots:
            if not self._taking_turns:
                return REFUSED
            if self._in_use >= self.capacity:
                return FULL
            self._in_use += 1
        try:
            admitted = asyncio.run_coroutine_threadsafe(self._admit(turn_id), self.loop).result()
        except BaseException:
            # The turn stays queued; redelivery hands it over again.
            self._release_slot()
            raise
        if not admitted:
            self._release_slot()
        self.wait_for_slot()
        return HOSTED if admitted else SKIPPED

    def wait_for_slot(self) -> None:
        """Backpressure: a full host waits a moment before it asks django-q2 for the next
        delivery, so a turn it sent back meanwhile goes to a process with room."""
        with self._slots:
            self._slots.wait_for(self._may_deliver, timeout=FULL_HOST_WAIT)

    def request_drain(self) -> None:
        self._tell_host(lambda: self._drain_requested.set())

    def request_finish(self) -> None:
        self._tell_host(lambda: self._finish_requested.set())

    def _tell_host(self, callback) -> None:
        if not self._thread.is_alive():
            return
        try:
            self.loop.call_soon_threadsafe(callback)
        except RuntimeError:
            # The host closed meanwhile (a drain ended): there is nothing left to tell.
            return

    def _may_deliver(self) -> bool:
        return self._in_use < self.capacity or not self._taking_turns

    def _on_shutdown_signal(self, signum, frame) -> None:
        logger.info("signal %s: draining hosted turns", signal.Signals(signum).name)
        self.request_drain()

    async def _offered(self, turn_id: int) -> None:
        """A turn was queued (``broadcast.offer_to_hosts``): take it now if this host has room,
        rather than when the broker delivers it (which then finds it running)."""
        with self._slots:
            if not self._taking_turns or self._in_use >= self.capacity:
                return
            self._in_use += 1
        admitted = False
        try:
            admitted = await self._admit(turn_id)
        finally:
            if not admitted:
                self._release_slot()

    async def _admit(self, turn_id: int) -> bool:
        hosted = await self.host.admit(turn_id)
        if hosted is None:
            return False
        hosted.task.add_done_callback(lambda _task: self._release_slot())
        return True

    def _release_slot(self) -> None:
        with self._slots:
            self._in_use -= 1
            self._slots.notify_all()

    def _stop_taking_turns(self) -> None:
        with self._slots:
            self._taking_turns = False
            self._slots.notify_all()

    def _serve_forever(self) -> None:
        try:
            asyncio.run(self._serve())
        except Exception:
            logger.exception("the turn host failed")
        finally:
            self._stop_taking_turns()
            self._started.set()

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._drain_requested = asyncio.Event()
        self._finish_requested = asyncio.Event()
        async with TurnHost(capacity=self.capacity, offered=self._offered) as host:
            self.host = host
            self._started.set()
            await _first_of(self._drain_requested.wait(), self._finish_requested.wait())
            self._stop_taking_turns()
            if not self._drain_requested.is_set():
                await _first_of(host.finish(), self._drain_requested.wait())
            if self._drain_requested.is_set():
                await host.drain(settings.AGENT_DRAIN_TIMEOUT)
        logger.info("turn host %s closed", host.worker_id)


async def _first_of(*awaitables) -> None:
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


def deliver(turn_id: int) -> str:
    return ProcessHost.current().deliver(turn_id)


def wait_for_slot() -> None:
    ProcessHost.current().wait_for_slot()


def hosting_worker(task_queue, result_queue, timer, timeout) -> None:
    """django-q2's worker process, which stays until its turn host has ended.

    django-q2's task loop ends on the cluster's stop, or by itself (``recycle``, ``max_rss``);
    the process must not exit while it still hosts turns, and must not leave the waiting to the
    interpreter's shutdown, which refuses new work to every thread pool the turns rely on.
    """
    tracing.configure()
    # Started before the first delivery, so that it is offered turns from the start.
    ProcessHost.current()
    django_q_worker(LightlyLockedQueue(task_queue), result_queue, timer, timeout)
    ProcessHost.close_current()
    # Its host's gauges count no more. (For a worker that died, django-q2's supervisor does the
    # same when it replaces it.)
    metrics.forget_process(os.getpid())
    # A worker process ends without the interpreter's exit handlers (multiprocessing leaves
    # through os._exit): the spans it still holds are sent now.
    tracing.shutdown()


class LightlyLockedQueue:
    """The cluster's task queue as a hosting worker reads it: holding the queue's read lock only
    while a task is there to be read.

    A blocking ``get`` of a multiprocessing queue holds a lock shared by all the cluster's
    workers for as long as it waits. A worker that hosts turns waits there nearly all the time,
    and one killed meanwhile (kill -9, the OOM killer) would leave the lock held: the cluster
    would take no task again. Here a worker looks for a task without the lock and takes the lock
    only to read one.
    """

    def __init__(self, queue):
        self._queue = queue

    def get(self):
        while True:
            if self._queue.empty():
                time.sleep(TASK_QUEUE_POLL)
                continue
            try:
                return self._queue.get(timeout=TASK_QUEUE_POLL)
            except queue.Empty:
                continue


class DrainingSentinel(Sentinel):
    """django-q2's cluster supervisor, made safe for hosts of many long turns.

    A signal to the whole process group reaches the supervisor too, and by default it dies on
    SIGTERM at once, leaving its workers orphaned mid-drain and the cluster half stopped. Here it
    ignores the signal (the cluster's main process stops it in order) and, when stopping, first
    tells every worker to drain, so a stop that reached only the main process drains too.
    """

    def __init__(self, stop_event, start_event, cluster_id, broker=None, timeout=None, start=True):
        super().__init__(stop_event, start_event, cluster_id, broker, timeout, start=False)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if start:
            self.start()

    def spawn_process(self, target, *args):
        _close_database_pools()
        return super().spawn_process(target, *args)

    def spawn_worker(self):
        # As django-q2's own, with a worker that outlives its task loop while it hosts turns.
        _close_database_pools()
        process = get_mp_context().Process(
            target=hosting_worker,
            args=(self.task_queue, self.result_queue, Value("f", -1), self.timeout),
            name=f"Process-{uuid.uuid4().hex}",
        )
        process.daemon = Conf.DAEMONIZE_WORKERS
        process.timer = process._args[2]
        self.pool.append(process)
        process.start()

    def stop(self):
        for process in self.pool:
            if process.is_alive():
                try:
                    os.kill(process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        super().stop()


def _close_database_pools() -> None:
    """Close this process's database connections, pooled ones included, before it forks.

    django-q2 forks worker, pusher and monitor processes from the supervisor, and first closes
    Django's connections; with a connection pool that only hands them back to the pool, which
    stays open, and the forked child inherits it. Two processes then talk over one connection:
    their statements interleave, each sees the other's results ("the last operation didn't
    produce records"), and one's transaction commits the other's half-done work (the chaos
    soak found sessions whose event counter fell behind their events). The supervisor opens a
    new pool when it next needs one.
    """
    for connection in connections.all():
        connection.close()
        close_pool = getattr(connection, "close_pool", None)
        if close_pool is not None:
            close_pool()
