from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Agent sessions"

    def ready(self):
        from agentproj.admin_access import restrict_app_to_superusers

        # Registering the system checks and connecting the signal receivers.
        from sessions_app import signals  # noqa: F401
        from sessions_app.core import tool_catalog
        from sessions_app.mcp import checks  # noqa: F401
        from sessions_app.mcp.tools import cached_tool, cached_tool_names
        from sessions_app.runtime.tools import registry

        # The lower layers know the runtime's tools through the catalog.
        tool_catalog.register(
            lookup=lambda name: registry().get(name) or cached_tool(name),
            built_in_names=lambda: registry().keys(),
            discovered_names=cached_tool_names,
        )

        # The turns run on django-q2's cluster, and its admin can make the cluster run anything.
        # django.contrib.admin comes first in INSTALLED_APPS: its ready() has registered them.
        restrict_app_to_superusers("django_q")
