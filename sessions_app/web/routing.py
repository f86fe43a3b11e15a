from django.urls import path

from approvals_app.inbox.consumers import InboxConsumer
from sessions_app.web import consumers

websocket_urlpatterns = [
    path("ws/sessions/", consumers.SessionListConsumer.as_asgi()),
    path("ws/sessions/<uuid:session_id>/", consumers.SessionConsumer.as_asgi()),
    path("ws/approvals/", consumers.ApprovalQueueConsumer.as_asgi()),
    path("ws/approvals/inbox/", InboxConsumer.as_asgi()),
]
