"""django-q2's admin pages are for superusers only: a schedule is a dotted path the cluster calls
(``os.system`` as well as a task), so django_q's model permissions must not be enough."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django_q.models import Schedule

pytestmark = pytest.mark.django_db

SCHEDULES = "/admin/django_q/schedule/"
ADD_SCHEDULE = f"{SCHEDULES}add/"
# Every page django_q registers: schedules, successful and failed tasks, and the queue when the
# broker is the ORM.
DJANGO_Q_PAGES = [
    ADD_SCHEDULE,
    *(
        reverse(f"admin:django_q_{model._meta.model_name}_changelist")
        for model in admin.site._registry
        if model._meta.app_label == "django_q"
    ),
]
COMMAND = {
    "name": "probe",
    "func": "os.system",
    "args": "'touch /tmp/agentproj-probe'",
    "schedule_type": Schedule.ONCE,
    "repeats": "-1",
    "next_run_0": "2030-01-01",
    "next_run_1": "00:00:00",
}


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def django_q_staff(django_user_model):
    staff = django_user_model.objects.create_user(
        "operator", password="operator-password-1", is_staff=True
    )
    staff.user_permissions.add(*Permission.objects.filter(content_type__app_label="django_q"))
    return staff


def test_it_refuses_django_q_pages_to_staff_with_every_django_q_permission(django_q_staff):
    client = logged_in(django_q_staff)
    existing = Schedule.objects.count()

    assert SCHEDULES in DJANGO_Q_PAGES and "/admin/django_q/failure/" in DJANGO_Q_PAGES
    for url in DJANGO_Q_PAGES:
        assert client.get(url).status_code == 403, url
    assert client.post(ADD_SCHEDULE, COMMAND).status_code == 403
    assert Schedule.objects.count() == existing
    assert not Schedule.objects.filter(func="os.system").exists()
    assert "django_q" not in client.get("/admin/").content.decode()


def test_it_keeps_the_django_q_pages_for_superusers(django_user_model):
    root = django_user_model.objects.create_superuser("root", password="root-password-1")
    client = logged_in(root)

    for url in DJANGO_Q_PAGES:
        assert client.get(url).status_code == 200, url
    assert "agentproj-housekeeping" in client.get(SCHEDULES).content.decode()
