"""Many browser-like clients against an app that is already running (`make run`): each opens a
session, its websocket and asks the demo model for a story; a few press Stop once their story
streams. Prints what they saw: when the text started, how long each Stop took to show `stopped`
on its socket, and whether the others kept streaming after the Stops. Asserts nothing.

    AGENTPROJ_ADMIN_PASSWORD=pw MAX_ACTIVE_TURNS_PER_USER=100 MAX_SOCKETS_PER_USER=100 \
      API_THROTTLE_RATES=send=600/min,cancel=600/min,sessions=600/min,resume=600/min make run
    .venv/bin/python bench/many_clients.py --password pw --n 60 --stop 6    # in another terminal

One login does what N people would, so its caps (active turns, open sockets) and rates (new
sessions, sends, resumes) must allow N; the defaults are those of one person.
"""

import argparse
import asyncio
import time
from types import SimpleNamespace
from urllib.parse import urlsplit

from concurrency import Client, ms_pair  # bench/ is the script's folder, first on sys.path


async def run(options) -> None:
    port = urlsplit(options.url).port or 80
    settings = SimpleNamespace(
        max_n=options.n,
        cancel_share=options.stop / options.n,
        cancel_after=options.stop_after,
        start_timeout=120.0,
        finish_grace=options.finish_within,
    )
    client = Client(options.url.rstrip("/"), port, settings)
    try:
        await client.login(options.password)
        await client.create_sessions(options.n)
        await client.open_sockets()
        started = time.time()
        await client.start_turns("Tell me a story, please.")
        await client.wait_for_turns(answer_seconds=0.0)
        report(client, started)
    finally:
        await client.clean_up_turns()
        await client.close()


def report(client: Client, started: float) -> None:
    probes = client.probes
    stopped = [p for p in probes if p.cancel and p.cancel_sent_at]
    others = [p for p in probes if not p.cancel]
    first_text = [p.first_text_at - p.posted_at for p in probes if p.first_text_at]
    stop_seconds = [p.stopped_seen_at - p.cancel_sent_at for p in stopped if p.stopped_seen_at]
    last_stop = max((p.cancel_sent_at for p in stopped), default=started)
    streamed_after = [p for p in others if any(when > last_stop for when, *_ in p.pieces)]
    outcomes: dict[str, int] = {}
    for probe in probes:
        outcome = probe.terminal or probe.gave_up or "unknown"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print(f"clients: {len(probes)}; outcomes: {outcomes}")
    print(f"POST -> first text p50 / p99 ms: {ms_pair(first_text)}")
    slowest = max(stop_seconds, default=0.0) * 1000
    print(f"Stop -> 'stopped' on its socket p50 / p99 ms ({len(stop_seconds)}/{len(stopped)}):")
    print(f"  {ms_pair(stop_seconds)}; slowest {slowest:.0f} ms")
    print(f"others still streaming after the last Stop: {len(streamed_after)}/{len(others)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--password", required=True, help="the admin login's password")
    parser.add_argument("--n", type=int, default=60, help="clients, one session each")
    parser.add_argument("--stop", type=int, default=6, help="clients that press Stop")
    parser.add_argument("--stop-after", type=float, default=2.0, help="s after their first text")
    parser.add_argument("--finish-within", type=float, default=180.0, help="s for a story")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
