from django.apps import AppConfig


class ApprovalsAppConfig(AppConfig):
    name = "approvals_app"
    verbose_name = "Approvals"

    def ready(self):
        from approvals_app.hooks import ApprovalRows
        from sessions_app.core import hooks

        hooks.register_approvals(ApprovalRows())
