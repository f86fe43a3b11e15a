"""The API keeps to its own OpenAPI schema: schemathesis generates requests from /api/schema/
(valid and invalid ones) and checks every answer against it — no server error, no undocumented
status or content type, invalid input refused, valid input accepted, authentication enforced.

Bounded: a fixed number of examples per operation, no time-based assertion. Requests go through
Django's WSGI handler in this thread, inside the test's transaction, so nothing is enqueued.
"""

import uuid

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis.specs.openapi.checks import positive_data_acceptance

from approvals_app.models import ApprovalRequest
from sessions_app.models import Agent
from tests.turn_states import waiting_turn

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 60
API_USER = "schemathesis"
# Fixed, so that schemathesis can ask for it before any test database exists.
API_TOKEN = "schemathesis-conformance-test-token-0001"

schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@schema.auth()
class TokenAuth:
    """The token of the test's approver (created by the ``api_data`` fixture)."""

    def get(self, case, ctx):
        return API_TOKEN

    def set(self, case, data, ctx):
        case.headers = {**(case.headers or {}), "Authorization": f"Token {data}"}


def existing_ids() -> dict[str, str]:
    approval = (
        ApprovalRequest.objects.select_related("turn")
        .filter(turn__session__owner__username=API_USER)
        .first()
    )
    if approval is None:
        # An earlier example deleted the session (DELETE /api/sessions/<id>/): make another.
        _, approval = waiting_turn(get_user_model().objects.get(username=API_USER))
    return {
        "session_id": str(approval.turn.session_id),
        "turn_id": str(approval.turn_id),
        "approval_id": str(approval.pk),
    }


def _well_formed(name: str, value) -> bool:
    try:
        uuid.UUID(str(value)) if name == "session_id" else int(value)
    except (TypeError, ValueError):
        return False
    return True


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half the time, well-formed ids name the test's real session, turn and approval, so that
    requests get past the lookup to the validation and the services behind it."""

    if not path_parameters:
        return st.just(path_parameters)

    def maybe_real(use_real: bool):
        if not use_real:
            return path_parameters
        real = existing_ids()
        return {
            name: real[name] if name in real and _well_formed(name, value) else value
            for name, value in path_parameters.items()
        }

    return st.booleans().map(maybe_real)


@pytest.fixture
def api_data(django_user_model, settings):
    # Rates are not what this test is about: every generated request should reach the view.
    settings.API_THROTTLE_RATES = {}
    # As Django's test client does: the test's transaction holds the connection, so a request
    # must not close it on the way out.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    approver = django_user_model.objects.create_superuser(API_USER, password="st-password-1")
    Token.objects.create(user=approver, key=API_TOKEN)
    waiting_turn(approver)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_it_conforms_to_its_schema(case, api_data):
    # Edited arguments must fit the schema of the approval's own tool, and a grant can match
    # only arguments of the approval's call, neither of which the API's schema can name: a
    # schema-valid body may rightly be refused there (400 invalid_arguments, invalid_grant).
    call_specific = isinstance(case.body, dict) and (
        "arguments" in case.body or isinstance(case.body.get("grant"), dict)
    )
    # Any integer fits the schema of a session's agent, and one that names no profile is
    # rightly refused (400), as an unknown id is.
    agent = case.body.get("agent") if isinstance(case.body, dict) else None
    unknown_agent = type(agent) is int and not Agent.objects.filter(pk=agent).exists()
    # Any two dates fit the usage query's schema, and a last day before the first is rightly
    # refused (400).
    query = case.query or {}
    backwards = "from" in query and "to" in query and str(query["to"]) < str(query["from"])
    refusable = call_specific or unknown_agent or backwards
    case.call_and_validate(excluded_checks=[positive_data_acceptance] if refusable else None)
