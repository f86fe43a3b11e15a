"""django-q2's ``qcluster``, with a supervisor that lets worker processes drain their turns.

It replaces django-q2's command of the same name (this app comes first in ``INSTALLED_APPS``):
the cluster starts ``DrainingSentinel`` instead of django-q2's own supervisor, so a SIGTERM or
SIGINT to the whole process group stops the cluster in order, every hosted turn is drained
and the command exits (see ``sessions_app.runtime.worker``).

It forgets the metrics of earlier runs on this machine when it starts (unless ``serve``, which
already did, started it), and with ``--metrics-port`` (``METRICS_PORT``) serves them itself, for
a machine that runs workers and no web process.
"""

from django.conf import settings
from django_q import cluster
from django_q.management.commands.qcluster import Command as DjangoQClusterCommand

from agentproj import metrics
from sessions_app.runtime.worker import DrainingSentinel


class Command(DjangoQClusterCommand):
    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument(
            "--metrics-port",
            type=int,
            default=settings.METRICS_PORT,
            help="Serve this machine's metrics on this port (METRICS_PORT; 0: not at all).",
        )
        parser.add_argument(
            "--keep-metrics",
            action="store_true",
            help="Keep the samples in the metrics directory (serve has emptied it already, and "
            "its web processes record there).",
        )

    def handle(self, *args, metrics_port, keep_metrics, **options):
        if not keep_metrics:
            metrics.clean_directory()
        if metrics_port:
            metrics.serve_http(metrics_port)
        # django-q2's Cluster looks its supervisor class up in its module when it starts.
        cluster.Sentinel = DrainingSentinel
        super().handle(*args, **options)
