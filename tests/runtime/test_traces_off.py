"""Without ``OTEL_EXPORTER_OTLP_ENDPOINT`` no process loads the OpenTelemetry SDK (about 35 MB);
with it, a web process does. Each case runs in a process of its own, which loads what it needs
and no more."""

import json
import subprocess
import sys

from tests.conftest import ROOT, subprocess_env

PROCESS_TIMEOUT = 60

# A web process, and what a worker process loads before it takes a turn.
PROCESS = """
import json, sys, django
django.setup()
import agentproj.asgi, agentproj.urls
from sessions_app import tasks
from sessions_app.runtime import worker
from agentproj import tracing
print(json.dumps({
    "sdk_loaded": "opentelemetry.sdk.trace" in sys.modules,
    "configured": tracing.configure(),
}))
"""


def run_python(**env: str) -> dict:
    environment = {
        name: value
        for name, value in subprocess_env(**env).items()
        if name in env or not name.startswith("OTEL_")
    }
    finished = subprocess.run(
        [sys.executable, "-c", PROCESS],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )
    assert finished.returncode == 0, finished.stderr
    return json.loads(finished.stdout.splitlines()[-1])


def test_without_an_endpoint_no_process_loads_the_sdk():
    assert run_python() == {"sdk_loaded": False, "configured": False}


def test_with_an_endpoint_a_web_process_exports():
    traced = run_python(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")

    assert traced == {"sdk_loaded": True, "configured": True}


def test_the_standard_switch_turns_them_off():
    off = run_python(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_SDK_DISABLED="true")

    assert off == {"sdk_loaded": False, "configured": False}
