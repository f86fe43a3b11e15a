"""The admin of agent profiles, sessions, turns and their timelines; MCP servers have theirs in
``sessions_app.mcp.admin``."""

from django import forms
from django.contrib import admin, messages

from agentproj.admin_access import SuperuserOnlyAdmin
from agentproj.forms import BOUNDED_JSON_FIELDS
from sessions_app.core import sessions
from sessions_app.mcp.admin import McpServerAdmin
from sessions_app.models import (
    Agent,
    AgentSession,
    Budget,
    McpServer,
    ModelPrice,
    TimelineEvent,
    Turn,
    UsageRecord,
)
from sessions_app.runtime import tools


class AgentForm(forms.ModelForm):
    class Meta:
        model = Agent
        fields = [
            "name",
            "instructions",
            "model",
            "all_tools",
            "tools",
            "max_model_calls",
            "context_tokens",
            "answer_reserve_tokens",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        built_in = ", ".join(sorted(tools.registry()))
        self.fields["tools"].help_text += f" Built-in tools here: {built_in}."

    def clean_tools(self):
        tools_listed = self.cleaned_data["tools"]
        # An emptied box means no tools, not a missing value.
        return [] if tools_listed is None else tools_listed


@admin.register(Agent)
class AgentAdmin(SuperuserOnlyAdmin):
    """Profiles are edited by superusers only: a profile decides which tools its sessions get."""

    form = AgentForm
    formfield_overrides = BOUNDED_JSON_FIELDS
    list_display = ["name", "model", "all_tools", "tools", "max_model_calls", "is_default"]
    search_fields = ["name"]
    # Which profile is the default changes by the action, which unmarks the previous one.
    readonly_fields = ["is_default"]
    actions = ["make_default"]

    def has_delete_permission(self, request, obj=None):
        # Sessions created without a choice get the default profile.
        return super().has_delete_permission(request, obj) and not (obj and obj.is_default)

    @admin.action(description="Make the selected profile the default", permissions=["change"])
    def make_default(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select one profile to make the default.", messages.ERROR)
            return
        agent = queryset.get()
        sessions.agent_make_default(agent_id=agent.pk)
        self.message_user(request, f"{agent} is now the default profile.", messages.SUCCESS)


@admin.register(AgentSession)
class AgentSessionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "agent", "created_at"]
    list_filter = ["agent"]
    search_fields = ["title", "owner__username"]
    readonly_fields = ["last_seq"]


@admin.register(Turn)
class TurnAdmin(admin.ModelAdmin):
    list_display = ["pk", "session", "index", "status", "stop_reason", "error_code", "created_at"]
    list_filter = ["status", "stop_reason", "error_code"]
    # Status changes go through the services, never through a form.
    readonly_fields = [f.name for f in Turn._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(TimelineEvent)
class TimelineEventAdmin(admin.ModelAdmin):
    list_display = ["session", "seq", "kind", "turn", "created_at"]
    list_filter = ["kind"]
    readonly_fields = [f.name for f in TimelineEvent._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(ModelPrice)
class ModelPriceAdmin(SuperuserOnlyAdmin):
    """Prices decide what budgets in money allow, so superusers set them."""

    list_display = ["model", "input_price", "output_price", "currency"]
    search_fields = ["model"]


@admin.register(Budget)
class BudgetAdmin(SuperuserOnlyAdmin):
    list_display = ["__str__", "user", "group", "unit", "amount", "currency", "period"]
    list_filter = ["unit", "period"]
    autocomplete_fields = ["user", "group"]


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """The records are facts of what was spent: read, never written here."""

    list_display = [
        "created_at",
        "user",
        "agent_name",
        "model",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "estimated",
        "cost",
        "currency",
    ]
    list_filter = ["model", "estimated"]
    search_fields = ["user__username", "agent_name", "model"]
    readonly_fields = [f.name for f in UsageRecord._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# Registered here, where Django's admin looks for this app's pages.
admin.site.register(McpServer, McpServerAdmin)
