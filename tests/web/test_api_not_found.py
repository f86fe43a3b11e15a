import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    ["/api/sessions/not-a-uuid/", "/api/sessions/not-a-uuid/cancel/", "/api/nothing-here/"],
)
def test_it_answers_unknown_api_paths_with_a_json_404(api, path):
    response = api.get(path)

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}


@pytest.mark.parametrize(
    "path", ["/api/sessions/not-a-uuid/cancel/", "/api/sessions/line%0Abreak/turns/"]
)
def test_it_answers_a_post_to_a_malformed_id_with_a_json_404(user, path):
    # A logged-in page's POST without a CSRF token: nothing exists there to protect.
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.post(path, {}, content_type="application/json")

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}
