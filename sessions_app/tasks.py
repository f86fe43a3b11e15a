"""django-q2 tasks. Like views, they take ids and call services or the runtime.

Delivery is at least once: running a turn takes its lease first, so a task delivered twice
runs the turn once.
"""

from approvals_app.services import approvals_escalate, approvals_expire
from sessions_app.core.delivery import turn_enqueue
from sessions_app.core.housekeeping import turns_reap_expired, turns_redeliver
from sessions_app.mcp import on_demand
from sessions_app.runtime import worker


def run_turn(turn_id: int) -> str:
    outcome = worker.deliver(turn_id)
    if outcome == worker.FULL:
        turn_enqueue(turn_id)
        worker.wait_for_slot()
    elif outcome == worker.REFUSED:
        # This process was told to shut down and has drained: the turn is still queued, so
        # hand it to another process, and leave now, between tasks, where leaving is safe.
        turn_enqueue(turn_id)
        raise SystemExit(0)
    return outcome


def housekeeping() -> str:
    """Scheduled: reap turns whose worker died, hand lost deliveries over again, expire overdue
    approval requests and escalate those their rule escalates."""
    reaped = turns_reap_expired()
    redelivered = turns_redeliver()
    expired = approvals_expire()
    escalated = approvals_escalate()
    return f"reaped {reaped}, redelivered {redelivered}, expired {expired}, escalated {escalated}"


def discover_mcp_tools(server_id: int) -> str:
    """The admin's "Discover tools now": connect to the MCP server and cache the tools it lists.
    Run by a worker, so that web processes never load the MCP SDK (``mcp.on_demand``)."""
    return on_demand.discover_tools(server_id)
