"""The pages and their scripts take the project's words from the server (agentproj.vocabulary):
each page embeds one JSON object for its scripts, the forms' limits come from the same place,
and no script or template spells a close code, an event kind or a limit of its own."""

import json
import re

import pytest

from agentproj.vocabulary import PAGE_VOCABULARY, TITLE_MAX_LENGTH, CloseCode
from sessions_app.core import sessions
from tests.conftest import ROOT
from tests.html_tree import parse

SCRIPTS = sorted((ROOT / "static" / "agentproj").glob("*.js"))
TEMPLATES = sorted((ROOT / "templates").rglob("*.html"))


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/sessions/", "/sessions/{session}/"])
def test_a_page_embeds_the_vocabulary_its_scripts_read(path, client, user):
    session = sessions.session_create(owner=user, title="Mine")
    client.force_login(user)
    page = parse(client.get(path.format(session=session.pk)).content.decode())

    assert json.loads(page.by_id("vocabulary").text) == json.loads(json.dumps(PAGE_VOCABULARY))
    titles = [e for e in page.elements() if e.tag == "input" and e.attrs.get("name") == "title"]
    assert titles and {e.attrs["maxlength"] for e in titles} == {str(TITLE_MAX_LENGTH)}


def test_no_script_spells_a_close_code_or_an_event_kind():
    spelled = {
        path.name: found
        for path in SCRIPTS
        if (
            found := re.findall(
                rf"\b(?:{'|'.join(str(code.value) for code in CloseCode)})\b"
                r"|kind\s*===?\s*[\"']\w+[\"']",
                path.read_text(),
            )
        )
    }
    assert SCRIPTS and spelled == {}


def test_no_template_spells_a_limit():
    spelled = {
        str(path.relative_to(ROOT)): found
        for path in TEMPLATES
        if (found := re.findall(r"maxlength=\"\d+\"", path.read_text()))
    }
    assert TEMPLATES and spelled == {}
