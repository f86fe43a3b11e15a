"""Tasks waiting in the django-q2 broker, run by the test as a worker would run them."""

import pydoc

from django_q.brokers import get_broker
from django_q.signing import SignedPackage


def run_queued_tasks(prefix: str) -> list:
    """Take everything the broker holds and run the tasks whose function's path starts with
    ``prefix``, one at a time in queue order; returns what they returned."""
    broker = get_broker()
    ran = []
    while batch := broker.dequeue():
        for ack_id, package in batch:
            task = SignedPackage.loads(package)
            if task["func"].startswith(prefix):
                ran.append(pydoc.locate(task["func"])(*task["args"], **task["kwargs"]))
            broker.acknowledge(ack_id)
    return ran
