"""The approvals app's answers to the core's hooks (``sessions_app.core.hooks``): the rows a
turn's move writes, under the core's locks and in its transaction."""

from approvals_app import records
from approvals_app.models import ApprovalStatus


class ApprovalRows:
    requests_open = staticmethod(records.requests_open)
    requests_withdraw = staticmethod(records.requests_withdraw)

    @staticmethod
    def requests_cancel(turn) -> int:
        return records.requests_close(turn, status=ApprovalStatus.CANCELLED)
