"""The approver inbox (``/approvals/``), decision links and the header's count: pages for
approvers, drawn through the chat page's approval card."""
