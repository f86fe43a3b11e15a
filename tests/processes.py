"""Real processes in tests: what a process left behind, and stopping them without hiding a hang.

A fixture that kills a process because it did not exit in time must also fail the test: a
swallowed timeout once hid a worker that never exited after SIGTERM.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _living_processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) of every process that has not ended (a zombie has
    ended; it only waits to be reaped)."""
    table = {}
    # Listed by name, each read on its own: a process can end between the listing and the read
    # (ESRCH), which pathlib's glob does not forgive.
    for name in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            state, ppid, pgrp = Path(f"/proc/{name}/stat").read_text().rsplit(")", 1)[1].split()[:3]
            if state != "Z":
                table[int(name)] = (int(ppid), int(pgrp))
    return table


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` (children, their children, ...)."""
    table = _living_processes()
    found: set[int] = set()
    pending = [pid]
    while pending:
        parent = pending.pop()
        for child, (ppid, _) in table.items():
            if ppid == parent and child not in found:
                found.add(child)
                pending.append(child)
    return found


def children(pid: int) -> set[int]:
    """The living processes ``pid`` started itself."""
    return {child for child, (ppid, _) in _living_processes().items() if ppid == pid}


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running."""
    return pids & _living_processes().keys()


def in_group(pgid: int) -> set[int]:
    """Living processes whose process group is ``pgid``."""
    return {pid for pid, (_, pgrp) in _living_processes().items() if pgrp == pgid}


def stop_or_fail(process: subprocess.Popen, *, timeout: float, name: str) -> None:
    """SIGTERM ``process`` if it still runs and wait for it; if it (or anything it started)
    does not exit within ``timeout``, kill what is left and fail the test."""
    family = descendants(process.pid)
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(process, family)
        pytest.fail(f"{name} (pid {process.pid}) did not exit within {timeout}s of SIGTERM")
    left = alive(family)
    if left:
        _kill(process, left)
        pytest.fail(f"{name} exited but left processes running: {sorted(left)}")


def _kill(process: subprocess.Popen, pids: set[int]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_serving(process: subprocess.Popen, url: str, log: Path, timeout: float) -> None:
    """Poll ``url`` until it answers 200; fail at once if the process exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{process.args} exited with {process.returncode}; see {log}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"nothing answered {url} within {timeout}s; see {log}")


def start_serve(port: int, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen:
    """``manage.py serve`` in a session of its own (a signal to its group reaches only it, as
    from a process manager), writing to ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "serve", "--port", str(port), *args],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


class SharedServe:
    """One ``manage.py serve`` that consecutive browser tests of a test process share: starting
    one (daphne, a django-q2 cluster, the demo model) costs far more than most tests it serves.
    Kept while the tests that follow ask for the same environment; stopped — and shown to exit —
    when one asks for another, when a test without a server comes, and at the end."""

    def __init__(self, log_dir: Path, start_timeout: float, stop_timeout: float):
        self.log_dir = log_dir
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.process: subprocess.Popen | None = None
        self.env: dict[str, str] = {}
        self.url = ""
        self.log = log_dir / "serve.log"
        self.started = 0

    def url_for(self, env: dict[str, str]) -> str:
        """The base URL of a serve running with ``env``: the running one if it has it."""
        if self.process is not None and env != self.env:
            self.stop()
        if self.process is None:
            self.started += 1
            self.log_dir.mkdir(parents=True, exist_ok=True)
            self.log = self.log_dir / f"serve-{os.getpid()}-{self.started}.log"
            port = free_port()
            self.process = start_serve(port, env, self.log)
            self.env = dict(env)
            self.url = f"http://127.0.0.1:{port}"
            wait_until_serving(
                self.process, f"{self.url}/accounts/login/", self.log, self.start_timeout
            )
        return self.url

    def check_alive(self) -> None:
        """Fail the current test if the serve it used has exited."""
        if self.process is not None and self.process.poll() is not None:
            code, self.process = self.process.returncode, None
            pytest.fail(f"serve exited with {code} during the test; see {self.log}")

    def stop(self) -> None:
        if self.process is not None:
            process, self.process = self.process, None
            stop_or_fail(process, timeout=self.stop_timeout, name="serve")
