from django.conf import settings
from django.db import models
from django.db.models import Q


class ApprovalStatus(models.TextChoices):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class ApprovalRequest(models.Model):
    turn = models.ForeignKey(
        "sessions_app.Turn", on_delete=models.CASCADE, related_name="approval_requests"
    )
    tool_call_id = models.CharField(max_length=200)
    tool_name = models.CharField(max_length=100)
    arguments = models.JSONField(default=dict)
    arguments_hash = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=ApprovalStatus.choices, default=ApprovalStatus.PENDING
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)
    expires_at = models.DateTimeField()
    # Set once, by the one worker that claims the approved call; the claim makes it run once.
    executed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        permissions = [("decide_approvalrequest", "Can approve or reject tool calls")]
        constraints = [
            models.UniqueConstraint(fields=["turn", "tool_call_id"], name="approval_per_call"),
            models.CheckConstraint(
                condition=Q(status__in=ApprovalStatus.values), name="approval_status_valid"
            ),
        ]

    def __str__(self):
        return f"{self.tool_name} ({self.status})"

    @property
    def is_pending(self) -> bool:
        return self.status == ApprovalStatus.PENDING
