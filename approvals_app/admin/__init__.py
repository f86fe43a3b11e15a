"""The approvals app's admin: the queue (``queue``), its forms (``forms``), and the pages around
it (``rules``: decisions, grants, policy rules), registered here."""

from django.contrib import admin

from approvals_app.admin.queue import ApprovalRequestAdmin
from approvals_app.admin.rules import ApprovalDecisionAdmin, PolicyRuleAdmin, SessionGrantAdmin
from approvals_app.models import ApprovalDecision, ApprovalRequest, PolicyRule, SessionGrant

admin.site.register(ApprovalRequest, ApprovalRequestAdmin)
admin.site.register(ApprovalDecision, ApprovalDecisionAdmin)
admin.site.register(SessionGrant, SessionGrantAdmin)
admin.site.register(PolicyRule, PolicyRuleAdmin)
