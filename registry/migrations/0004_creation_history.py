"""Give every case record its creation row in the history.

Registries built by an earlier `seed_demo` (which wrote the tables directly) have records without
any history row, so their first change had nothing to compare against and showed no old value.
This writes one creation ("+") row, with the record's current values, for each record that has
no history at all; records with history are untouched.
"""

from django.db import migrations
from django.utils import timezone

MODELS = [
    "Patient",
    "Baseline",
    "Cycle",
    "ResponseAssessment",
    "AdverseEvent",
    "Transplant",
    "SubsequentTherapy",
    "FollowUp",
    "CrfStatus",
]
BATCH = 2000


def backfill(apps, schema_editor):
    now = timezone.now()
    for name in MODELS:
        model = apps.get_model("registry", name)
        history = apps.get_model("registry", f"Historical{name}")
        fields = [f.attname for f in model._meta.concrete_fields]
        with_history = history.objects.values("id")
        missing = model.objects.exclude(pk__in=with_history).order_by("pk")
        batch = []
        for record in missing.iterator(chunk_size=BATCH):
            values = {f: getattr(record, f) for f in fields}
            batch.append(
                history(
                    **values,
                    history_date=getattr(record, "created_at", None) or now,
                    history_type="+",
                    history_change_reason="history started (record had none)",
                )
            )
            if len(batch) >= BATCH:
                history.objects.bulk_create(batch)
                batch = []
        history.objects.bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [("registry", "0003_monitoring_facts")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
