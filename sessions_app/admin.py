from django.contrib import admin

from .models import AgentSession, TimelineEvent, Turn


@admin.register(AgentSession)
class AgentSessionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "owner", "created_at"]
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
