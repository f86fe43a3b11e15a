"""The built-in demo model answers in the web process only while it is the model in use, and like
any hosted model: for this site's hosts, with the deployment's key, within a body limit."""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import HttpCommunicator
from django.core.management import CommandError, call_command

from agentproj.asgi import DEMO_LLM_PREFIX, application

pytestmark = pytest.mark.django_db

COMPLETIONS = f"{DEMO_LLM_PREFIX}/chat/completions"
HELLO = json.dumps({"model": "agentproj-demo", "messages": [{"role": "user", "content": "hello"}]})


@pytest.fixture
def demo_in_use(settings):
    settings.DEMO_LLM_ENABLED = True
    return settings


def call(
    path: str, *, body: str = HELLO, host: str = "127.0.0.1:8000", key: str | None, **headers
) -> dict:
    sent = [(b"host", host.encode()), (b"content-type", b"application/json")]
    if key is not None:
        sent.append((b"authorization", f"Bearer {key}".encode()))
    sent += [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    communicator = HttpCommunicator(application, "POST", path, body=body.encode(), headers=sent)
    return async_to_sync(communicator.get_response)(timeout=10)


def test_it_answers_this_deployments_workers(demo_in_use):
    response = call(COMPLETIONS, key=demo_in_use.DEMO_LLM_API_KEY)

    assert response["status"] == 200
    answer = json.loads(response["body"])
    assert answer["choices"][0]["message"]["content"].startswith("You said: hello.")


def test_it_is_not_mounted_when_another_model_is_in_use(settings):
    settings.DEMO_LLM_ENABLED = False

    response = call(COMPLETIONS, key=settings.DEMO_LLM_API_KEY)

    assert response["status"] == 404
    assert b"You said" not in response["body"]


def test_it_refuses_a_host_that_allowed_hosts_does_not_list(demo_in_use):
    response = call(COMPLETIONS, host="evil.example.com", key=demo_in_use.DEMO_LLM_API_KEY)

    assert response["status"] == 400


@pytest.mark.parametrize("key", [None, "", "demo", "not-the-key"])
def test_it_refuses_a_caller_without_the_deployments_key(demo_in_use, key):
    response = call(COMPLETIONS, key=key)

    assert response["status"] == 401
    assert b"You said" not in response["body"]


def test_it_refuses_a_body_over_the_upload_limit(demo_in_use):
    demo_in_use.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    oversized = json.dumps({"messages": [{"role": "user", "content": "x" * 1000}]})

    declared = call(
        COMPLETIONS,
        body=oversized,
        key=demo_in_use.DEMO_LLM_API_KEY,
        content_length=str(len(oversized)),
    )
    undeclared = call(COMPLETIONS, body=oversized, key=demo_in_use.DEMO_LLM_API_KEY)

    assert declared["status"] == 413
    assert undeclared["status"] == 413


def test_serve_refuses_to_point_workers_at_a_host_it_would_refuse(settings, monkeypatch):
    monkeypatch.delenv("LLM_BASE_URL", raising=False)
    settings.ALLOWED_HOSTS = ["chat.example.com"]

    with pytest.raises(CommandError, match="ALLOWED_HOSTS"):
        call_command("serve", port=8123)
