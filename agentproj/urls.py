from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from agentproj.api_errors import api_not_found
from agentproj.static_files import serve_static
from approvals_app import api as approvals_api
from approvals_app.inbox import views as inbox_views
from approvals_app.integrations.slack_interactions import slack_interactions
from sessions_app.web import api as sessions_api
from sessions_app.web import views
from sessions_app.web.metrics import metrics_view
from sessions_app.web.usage_api import UsageApi
from sessions_app.web.usage_page import usage_csv, usage_page

api = [
    path("sessions/", sessions_api.SessionListApi.as_view(), name="api-sessions"),
    path(
        "sessions/<uuid:session_id>/", sessions_api.SessionDetailApi.as_view(), name="api-session"
    ),
    path(
        "sessions/<uuid:session_id>/turns/",
        sessions_api.TurnCreateApi.as_view(),
        name="api-turns",
    ),
    path(
        "sessions/<uuid:session_id>/turns/<int:turn_id>/",
        sessions_api.TurnDetailApi.as_view(),
        name="api-turn",
    ),
    path(
        "sessions/<uuid:session_id>/turns/<int:turn_id>/regenerate/",
        sessions_api.TurnRegenerateApi.as_view(),
        name="api-turn-regenerate",
    ),
    path(
        "sessions/<uuid:session_id>/turns/<int:turn_id>/show/",
        sessions_api.TurnShowApi.as_view(),
        name="api-turn-show",
    ),
    path(
        "sessions/<uuid:session_id>/cancel/",
        sessions_api.session_cancel,
        name="api-cancel",
    ),
    path(
        "sessions/<uuid:session_id>/events/",
        sessions_api.SessionEventsApi.as_view(),
        name="api-events",
    ),
    path(
        "sessions/<uuid:session_id>/grants/<int:grant_id>/revoke/",
        approvals_api.SessionGrantRevokeApi.as_view(),
        name="api-session-grant-revoke",
    ),
    path("agents/", sessions_api.AgentListApi.as_view(), name="api-agents"),
    path("usage/", UsageApi.as_view(), name="api-usage"),
    path("approvals/", approvals_api.ApprovalListApi.as_view(), name="api-approvals"),
    path(
        "approvals/<int:approval_id>/approve/",
        approvals_api.ApprovalApproveApi.as_view(),
        name="api-approve",
    ),
    path(
        "approvals/<int:approval_id>/reject/",
        approvals_api.ApprovalRejectApi.as_view(),
        name="api-reject",
    ),
    path(
        "approvals/<int:approval_id>/receipt/",
        approvals_api.ApprovalReceiptApi.as_view(),
        name="api-approval-receipt",
    ),
    path(
        "approvals/receipt-key/",
        approvals_api.ReceiptKeyApi.as_view(),
        name="api-approval-receipt-key",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: the CSP allows no inline script.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # Anything else under /api/ (a malformed id, say, even one with a line break) is a JSON 404,
    # never Django's HTML page.
    re_path(r"^[\s\S]*$", api_not_found),
]

urlpatterns = [
    path("", RedirectView.as_view(url="/sessions/", permanent=False)),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("sessions/", views.session_list, name="session-list"),
    path("sessions/<uuid:session_id>/", views.session_detail, name="session-detail"),
    path("sessions/<uuid:session_id>/rename/", views.session_rename, name="session-rename"),
    path("sessions/<uuid:session_id>/delete/", views.session_delete, name="session-delete"),
    path("approvals/", inbox_views.inbox, name="approval-inbox"),
    path("approvals/<int:approval_id>/", inbox_views.approval_link, name="approval-link"),
    path(
        "approvals/<int:approval_id>/decide/",
        inbox_views.inbox_decide,
        name="approval-inbox-decide",
    ),
    path("usage/", usage_page, name="usage"),
    path("usage/usage.csv", usage_csv, name="usage-csv"),
    path("api/", include(api)),
    path("integrations/slack/interactions/", slack_interactions, name="slack-interactions"),
    path("metrics", metrics_view, name="metrics"),
    re_path(rf"^{settings.STATIC_URL.strip('/')}/(?P<path>.*)$", serve_static),
]

handler400 = "agentproj.api_errors.bad_request"
handler403 = "agentproj.api_errors.permission_denied"
handler404 = "agentproj.api_errors.page_not_found"
handler500 = "agentproj.api_errors.server_error"
