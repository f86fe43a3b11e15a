"""django-q2's ``qcluster``, with a supervisor that lets worker processes drain their turns.

It replaces django-q2's command of the same name (this app comes first in ``INSTALLED_APPS``):
the cluster starts ``DrainingSentinel`` instead of django-q2's own supervisor, so a SIGTERM or
SIGINT to the whole process group stops the cluster in order, every hosted turn is drained
and the command exits (see ``sessions_app.runtime.worker``).
"""

from django_q import cluster
from django_q.management.commands.qcluster import Command as DjangoQClusterCommand

from sessions_app.runtime.worker import DrainingSentinel


class Command(DjangoQClusterCommand):
    def handle(self, *args, **options):
        # django-q2's Cluster looks its supervisor class up in its module when it starts.
        cluster.Sentinel = DrainingSentinel
        super().handle(*args, **options)
