"""``GET /metrics``: every process's samples on this machine (``agentproj.metrics``), and the
turns active now by status, read from the database at scrape time.

Counting active turns in the database rather than in a gauge each process moves keeps the
number exact whatever happened to the processes: a turn waiting for approval is held by none,
and a worker killed mid-turn cannot leave one counted. It is the deployment's number, the same
from every web machine. One grouped query per scrape.
"""

from django.http import HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from agentproj import metrics
from sessions_app.core import selectors


class TurnsActive:
    """The ``agentproj_turns_active{status}`` family, collected from the database."""

    def collect(self):
        family = GaugeMetricFamily(
            "agentproj_turns_active", "Turns in each active status now.", labels=["status"]
        )
        for status, turns in selectors.turns_active_by_status().items():
            family.add_metric([status], turns)
        yield family


@require_GET
def metrics_view(request):
    if not metrics.request_may_scrape(request):
        return JsonResponse(metrics.REFUSAL, status=403)
    registry = metrics.machine_registry()
    registry.register(TurnsActive())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
