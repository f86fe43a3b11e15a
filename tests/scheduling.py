"""How the suite's tests are handed to the test processes (pytest-xdist, ``-n``).

xdist's default (``--dist load``) sends each process long runs of consecutive tests ahead of
time, so the slow tests that come late in the run (the service restarts, about a minute of
servers restarting in a row, come among the last) can leave one process working alone while
the others have finished. Here tests are handed out one at a time to whichever process is free,
so that the run ends with the last short tests, and:

- the tests that start processes of their own by design (``SLOW_FIRST``) are handed out
  together, where the first of them would come: started early, not at the end. Only tests that
  come after them move: they all use the database the same way (pytest-django orders the tests
  by how they use the database, and that order is kept);
- a module in ``TOGETHER`` runs whole in one test process, handed out before anything else: its
  tests share what a module-scoped fixture starts (and use no test database);
- a browser test module runs whole in one process, where its tests share one ``serve``
  (``tests.processes.SharedServe``), started once for its environment.

(``--dist loadgroup`` with ``xdist_group`` marks would keep tests together too, but with
pytest 9 its marks are silently ignored: xdist renames tests through an attribute pytest no
longer reads. Tests are handed out by their index in the collection, never by their id: some
ids repeat, as schemathesis's tests, and each must run.)
"""

from xdist.scheduler import LoadScheduling

# Modules whose tests share servers a module-scoped fixture starts: one process runs them all.
TOGETHER = ("tests/runtime/test_service_restarts.py",)

# Modules whose tests each start worker processes or a whole ``serve`` (10-40 s a test).
SLOW_FIRST = (
    "tests/runtime/test_worker_host.py",
    "tests/runtime/test_serve_shutdown.py",
    "tests/runtime/test_metrics_serve.py",
    "tests/runtime/test_traces_serve.py",
    "tests/runtime/test_traces_off.py",
    "tests/runtime/test_scale_out.py",
    "tests/runtime/test_worker_drain.py",
    "tests/runtime/test_worker_wakes_at_once.py",
    "tests/runtime/test_runtime_cleanup.py",
)

BROWSER_TESTS = "tests/e2e/"

# Tests a process has been sent and not finished: the one it runs, and the next ones it needs
# to know of (pytest runs a test once it knows which comes next).
AHEAD = 3


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def unit_of(nodeid: str) -> str | None:
    """The module a test is handed out with, or None: it goes alone."""
    module = module_of(nodeid)
    if module in TOGETHER or module.startswith(BROWSER_TESTS):
        return module
    return None


def hand_out_order(nodeids: list[str]) -> list[int]:
    """The indexes of ``nodeids`` in the order they are handed out (see the module's docstring),
    each unit's tests one after the other."""
    indexes = range(len(nodeids))
    together = [i for i in indexes if module_of(nodeids[i]) in TOGETHER]
    rest = [i for i in indexes if module_of(nodeids[i]) not in TOGETHER]
    slow = [i for i in rest if module_of(nodeids[i]) in SLOW_FIRST]
    if slow:
        others = [i for i in rest if module_of(nodeids[i]) not in SLOW_FIRST]
        before = [i for i in others if i < slow[0]]
        rest = before + slow + others[len(before) :]
    # A unit whose tests pytest-django's order split goes out whole, where its first test is.
    order, placed = [], {}
    for i in together + rest:
        unit = unit_of(nodeids[i])
        if unit is None:
            order.append([i])
        elif unit in placed:
            placed[unit].append(i)
        else:
            placed[unit] = [i]
            order.append(placed[unit])
    return [i for group in order for i in group]


class SlowFirstScheduling(LoadScheduling):
    """xdist's load scheduling, but a process is sent tests only while it has fewer than
    ``AHEAD`` left, in ``hand_out_order``, a unit (``unit_of``) at once."""

    def schedule(self) -> None:
        assert self.collection_is_completed
        if self.collection is not None:
            for node in self.nodes:
                self.check_schedule(node)
            return
        if not self._check_nodes_have_same_collection():
            self.log("**Different tests collected, aborting run**")
            return
        self.collection = list(next(iter(self.node2collection.values())))
        self.pending[:] = hand_out_order(self.collection)
        if not self.collection:
            return
        for node in self.nodes:
            self.check_schedule(node)

    def check_schedule(self, node, duration: float = 0) -> None:
        if node.shutting_down:
            return
        if not self.pending:
            node.shutdown()
            return
        while self.pending and len(self.node2pending[node]) < AHEAD:
            unit = unit_of(self.collection[self.pending[0]])
            count = 1
            while (
                unit is not None
                and count < len(self.pending)
                and unit_of(self.collection[self.pending[count]]) == unit
            ):
                count += 1
            self._send_tests(node, count)
        self.log("num items waiting for node:", len(self.pending))
