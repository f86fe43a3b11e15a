import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    ["/api/sessions/not-a-uuid/", "/api/sessions/not-a-uuid/cancel/", "/api/nothing-here/"],
)
def test_it_answers_unknown_api_paths_with_a_json_404(api, path):
    response = api.get(path)

    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}
