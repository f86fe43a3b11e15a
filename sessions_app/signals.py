"""Reactions to Django's own signals."""

from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver

from . import events


@receiver(user_logged_out)
def close_the_sockets_of_the_login(sender, request, user, **kwargs):
    # Django sends this before it flushes the session, so the key is still the login's.
    session_key = request.session.session_key if request is not None else None
    if session_key:
        events.login_ended_on_commit(session_key)
