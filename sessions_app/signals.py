"""Reactions to Django's own signals."""

from django.contrib.auth.signals import user_logged_out
from django.db import DEFAULT_DB_ALIAS
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from sessions_app.core import broadcast
from sessions_app.mcp import registry


@receiver(user_logged_out)
def close_the_sockets_of_the_login(sender, request, user, **kwargs):
    # Django sends this before it flushes the session, so the key is still the login's.
    session_key = request.session.session_key if request is not None else None
    if session_key:
        broadcast.login_ended_on_commit(session_key)


@receiver(post_migrate)
def record_the_declared_mcp_servers(sender, using=DEFAULT_DB_ALIAS, **kwargs):
    # `serve` and deploys migrate before anything else starts: the admin lists the servers of
    # AGENT_MCP_SERVERS before the first worker does.
    if sender.name == "sessions_app" and using == DEFAULT_DB_ALIAS:
        registry.mcp_server_sync_declared()
