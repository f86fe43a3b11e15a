"""Admin pages only superusers see and edit: what decides which tools an agent gets, which servers
it may reach, which calls need a person, and what the task cluster runs."""

from django.contrib import admin


class SuperuserOnly:
    """Mixed into a ModelAdmin: every permission needs an active superuser, on top of what the
    admin itself allows (an admin that allows no adds still allows none)."""

    def _superuser(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_module_permission(self, request):
        return self._superuser(request) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return self._superuser(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request):
        return self._superuser(request) and super().has_add_permission(request)

    def has_change_permission(self, request, obj=None):
        return self._superuser(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._superuser(request) and super().has_delete_permission(request, obj)


class SuperuserOnlyAdmin(SuperuserOnly, admin.ModelAdmin):
    pass


def restrict_app_to_superusers(app_label: str, site: admin.AdminSite = admin.site) -> None:
    """Register again, for superusers only, every admin page that ``app_label`` registered itself.

    For django-q2: its Schedule page stores a dotted path the cluster imports and calls (any
    function, ``os.system`` too), and its task pages resubmit stored calls. Holding django_q's
    model permissions must not be enough to run code as the service's user. Its pages stay (for
    superusers): they are where operators look at schedules and failed tasks. Call it once the
    admin has discovered every app's ``admin`` module (an ``AppConfig.ready`` listed after
    ``django.contrib.admin``).
    """
    for model, model_admin in list(site._registry.items()):
        if model._meta.app_label != app_label or isinstance(model_admin, SuperuserOnly):
            continue
        original = type(model_admin)
        restricted = type(f"SuperuserOnly{original.__name__}", (SuperuserOnly, original), {})
        site.unregister(model)
        site.register(model, restricted)
