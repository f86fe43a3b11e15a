"""Tasks waiting in the django-q2 broker, run by the test as a worker would run them."""

import pydoc

from django_q.brokers import get_broker
from django_q.signing import SignedPackage


def run_queued_tasks(func: str, *args) -> list:
    """Take everything the broker holds and run the calls of ``func`` with ``args``, one at a time
    in queue order; returns what they returned. The rest is dropped: on Redis the queue outlives
    a test, and holds turn deliveries no worker of this test should run."""
    broker = get_broker()
    ran = []
    while batch := broker.dequeue():
        for ack_id, package in batch:
            task = SignedPackage.loads(package)
            if task["func"] == func and tuple(task["args"]) == args:
                ran.append(pydoc.locate(func)(*args, **task["kwargs"]))
            broker.acknowledge(ack_id)
    return ran
