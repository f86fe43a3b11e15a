from django.db import migrations


def forget_discovery_problems(apps, schema_editor):
    """A reason stored before secrets were masked may quote a header's value (an HTTP library's
    error does): forget them all; the next connection to each server records its own again."""
    McpServer = apps.get_model("sessions_app", "McpServer")
    McpServer.objects.exclude(discovery_problem="").update(discovery_problem="")


class Migration(migrations.Migration):
    dependencies = [
        ("sessions_app", "0012_one_line_titles"),
    ]

    operations = [migrations.RunPython(forget_discovery_problems, migrations.RunPython.noop)]
