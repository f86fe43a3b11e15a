from django.db import migrations, models

from sessions_app.core.rendering import assistant_html

BATCH = 500


def render_final_messages(apps, schema_editor):
    """Render each final assistant message once, so that no read has to (it would on every
    read, as before this migration). Messages still streaming get theirs when they end."""
    TimelineEvent = apps.get_model("sessions_app", "TimelineEvent")
    messages = TimelineEvent.objects.filter(kind="assistant_message", html__isnull=True)
    rendered = []
    for event in messages.only("pk", "data").iterator(chunk_size=BATCH):
        if event.data.get("streaming"):
            continue
        event.html = assistant_html(str(event.data.get("text") or ""))
        rendered.append(event)
        if len(rendered) == BATCH:
            TimelineEvent.objects.bulk_update(rendered, ["html"])
            rendered = []
    TimelineEvent.objects.bulk_update(rendered, ["html"])


class Migration(migrations.Migration):
    dependencies = [
        ("sessions_app", "0009_context_trimmed_and_agent_window"),
    ]

    operations = [
        migrations.AddField(
            model_name="timelineevent",
            name="html",
            field=models.TextField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(render_final_messages, migrations.RunPython.noop),
    ]
