from django.apps import AppConfig


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Agent sessions"

    def ready(self):
        from . import checks, signals  # noqa: F401  (registers the checks, connects the receivers)
