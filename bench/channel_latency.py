"""Cross-process latency of the configured channel layer (prints numbers; not a test).

A child process echoes every message it receives on one channel back on another; this process
measures the round trip and reports half of it as the one-way latency, p50/p95/p99.

    .venv/bin/python bench/channel_latency.py [--messages 200]
    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python bench/channel_latency.py

With no REDIS_URL it measures channels-lite on a throw-away SQLite file.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PING, PONG = "bench-ping", "bench-pong"


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentproj.settings")
    import django

    django.setup()


async def echo(count: int) -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    for _ in range(count):
        message = await layer.receive(PING)
        await layer.send(PONG, message)


async def measure(count: int) -> list[float]:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    one_way = []
    for n in range(count):
        started = time.perf_counter()
        await layer.send(PING, {"type": "ping", "n": n})
        await layer.receive(PONG)
        one_way.append((time.perf_counter() - started) / 2)
    return one_way


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--echo", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.echo:
        setup_django()
        asyncio.run(echo(args.messages))
        return

    with tempfile.TemporaryDirectory() as folder:
        env = dict(os.environ)
        if not env.get("REDIS_URL"):
            env["CHANNELS_DB_PATH"] = str(Path(folder) / "channels.sqlite3")
            env["DATABASE_URL"] = f"sqlite:///{Path(folder) / 'db.sqlite3'}"
            subprocess.run(
                [sys.executable, str(ROOT / "manage.py"), "migrate", "--database", "channels"],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        os.environ.update(env)
        setup_django()
        from django.conf import settings

        child = subprocess.Popen(
            [sys.executable, __file__, "--echo", "--messages", str(args.messages)], env=env
        )
        try:
            latencies = asyncio.run(measure(args.messages))
        finally:
            child.wait(timeout=60)
        backend = settings.CHANNEL_LAYERS["default"]["BACKEND"].rsplit(".", 1)[-1]
        interval = settings.CHANNEL_LAYERS["default"]["CONFIG"].get("polling_interval")
        ms = [v * 1000 for v in latencies]
        print(
            f"channel layer: {backend}" + (f" (polling_interval {interval}s)" if interval else "")
        )
        print(
            f"one-way latency over {len(ms)} messages: p50 {percentile(ms, 0.5):.1f} ms, "
            f"p95 {percentile(ms, 0.95):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
            f"mean {statistics.mean(ms):.1f} ms"
        )


if __name__ == "__main__":
    main()
