from django.contrib import admin

from .models import ApprovalRequest


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(admin.ModelAdmin):
    list_display = ["pk", "tool_name", "status", "turn", "created_at", "expires_at"]
    list_filter = ["status", "tool_name"]
