"""The admin's help texts read whole: it draws them as HTML, so a placeholder such as
"<server>__<tool>" was swallowed as a tag and the text read "__" for one tool."""

import pytest

from tests.html_tree import parse

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("page", "words"),
    [
        (
            "/admin/sessions_app/agent/add/",
            '"time__get_current_time" for the tool get_current_time',
        ),
        ("/admin/sessions_app/agent/add/", "(the list of tools is then not used)"),
        ("/admin/sessions_app/mcpserver/add/", "two underscores and the tool's name: \"time__"),
    ],
)
def test_the_help_texts_read_whole(admin_client, page, words):
    response = admin_client.get(page)
    assert response.status_code == 200
    assert words in parse(response.content.decode()).visible_text
