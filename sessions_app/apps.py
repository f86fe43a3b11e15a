from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Agent sessions"

    def ready(self):
        from agentproj.admin_access import restrict_app_to_superusers

        from . import checks, signals  # noqa: F401  (registers the checks, connects the receivers)

        # The turns run on django-q2's cluster, and its admin can make the cluster run anything.
        # django.contrib.admin comes first in INSTALLED_APPS: its ready() has registered them.
        restrict_app_to_superusers("django_q")
