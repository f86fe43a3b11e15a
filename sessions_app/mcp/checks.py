"""System checks: a deployment whose settings are wrong says so when it starts."""

from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from sessions_app.mcp.registry import declared_servers


@register()
def check_declared_mcp_servers(app_configs, **kwargs):
    try:
        declared_servers()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="sessions_app.E001")]
    return []
