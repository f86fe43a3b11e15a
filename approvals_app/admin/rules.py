"""The admin pages around the queue: the audit of decisions, session grants (and revoking
them), and the policy's rules (superusers only)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied

from agentproj.admin_access import SuperuserOnlyAdmin
from approvals_app import selectors, services
from approvals_app.models import PolicyRule
from sessions_app.core import tool_catalog


class ApprovalDecisionAdmin(admin.ModelAdmin):
    """The audit of decisions, by approver and date."""

    list_display = ["at", "approver", "decision", "approval", "reason"]
    list_filter = ["decision", "approver"]
    list_select_related = ["approver", "approval"]
    date_hierarchy = "at"
    readonly_fields = ["approval", "approver", "decision", "reason", "at"]

    def get_queryset(self, request):
        # A decision names its request and its reason: shown to those who may see the request.
        return (
            super()
            .get_queryset(request)
            .filter(selectors.approval_visibility(request.user, through="approval__"))
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class SessionGrantAdmin(admin.ModelAdmin):
    """Session grants, and revoking them; they are made only by approving a request."""

    list_display = ["pk", "session", "tool_name", "match", "granted_by", "created_at", "revoked_at"]
    list_filter = ["tool_name", ("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["session", "granted_by"]
    readonly_fields = [
        "session",
        "tool_name",
        "match",
        "approval",
        "granted_by",
        "created_at",
        "revoked_at",
        "revoked_by",
    ]
    actions = ["revoke_selected"]

    def get_queryset(self, request):
        # A grant's match holds the approved call's arguments: shown as its request is.
        return (
            super()
            .get_queryset(request)
            .filter(selectors.approval_visibility(request.user, through="approval__"))
        )

    def has_view_permission(self, request, obj=None):
        return services.can_decide(request.user) or super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request) -> bool:
        return services.can_decide(request.user)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.action(description="Revoke selected grants", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        for grant in queryset:
            services.grant_revoke(
                session_id=grant.session_id, grant_id=grant.pk, actor=request.user
            )
        self.message_user(request, f"Revoked {queryset.count()} grant(s).", messages.SUCCESS)


class PolicyRuleForm(forms.ModelForm):
    """A rule's tool is picked from the tools known now: the built-in ones and those the MCP
    servers listed when their tools were last discovered. A typo in free text would make a rule
    that never applies, silently. A rule whose tool is no longer known keeps it, listed apart."""

    tool_name = forms.ChoiceField(
        label="Tool",
        help_text="MCP servers' tools are listed once discovered (the MCP server's page: "
        '"Discover tools now").',
    )

    class Meta:
        model = PolicyRule
        fields = [
            "name",
            "tool_name",
            "agent",
            "position",
            "field",
            "operator",
            "value",
            "outcome",
            "group",
            "quorum",
            "allow_self_approval",
            "escalate_after",
            "escalate_to",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        built_in = tool_catalog.built_in_names()
        discovered = tool_catalog.discovered_names() - built_in
        saved = self.instance.tool_name
        gone = {saved} - built_in - discovered - {""}
        groups = [
            ("Built-in tools", built_in),
            ("MCP servers' tools", discovered),
            ("No longer offered", gone),
        ]
        self.fields["tool_name"].choices = [("", "---------")] + [
            (group, [(name, name) for name in sorted(names)]) for group, names in groups if names
        ]


class PolicyRuleAdmin(SuperuserOnlyAdmin):
    """Policies are edited by superusers only: a rule decides who may run what."""

    form = PolicyRuleForm

    list_display = [
        "tool_name",
        "agent",
        "position",
        "name",
        "field",
        "operator",
        "value",
        "outcome",
        "group",
        "quorum",
        "allow_self_approval",
    ]
    list_display_links = ["name"]
    list_filter = ["tool_name", "agent", "outcome"]
    fieldsets = [
        (None, {"fields": ["name", "tool_name", "agent", "position"]}),
        ("Condition (leave empty to match every call)", {"fields": ["field", "operator", "value"]}),
        ("Outcome", {"fields": ["outcome", "group", "quorum", "allow_self_approval"]}),
        (
            "Escalation (require_approval; both or neither)",
            {"fields": ["escalate_after", "escalate_to"]},
        ),
    ]
