"""The audit trail: django-simple-history's tables of every case model, read as one.

`monitoring_audit_trail` is a database view (UNION ALL of the historical tables, with each row's
case, study ID and site) behind the read-only AuditEntry model, so the admin's changelist gives
filters by user, site, model and date, search and paging, and the CSV export reads the same
filtered queryset. The view is dropped before and re-created after every `migrate` (from the
models as they are then), so schema changes of the historical tables never trip over it.

Historical rows are append-only in the application: a pre_delete receiver refuses to delete one
(QuerySet.delete() included, since a receiver disables the fast path), and a pre_save receiver
refuses to rewrite one. Raw SQL bypasses both (seed_demo's demo reset uses it on purpose).
"""

import csv

from django.apps import apps
from django.core.exceptions import PermissionDenied
from django.db import connections
from django.db.models.signals import post_migrate, pre_delete, pre_migrate, pre_save
from django.utils.translation import gettext as _
from simple_history.models import HistoricalChanges

from exchange.safe import safe_row
from registry.history import field_changes, shown
from registry.models import Patient

VIEW = "monitoring_audit_trail"


def history_models():
    return [m for m in apps.get_models() if issubclass(m, HistoricalChanges)]


def audited_history_models():
    """Historical models of case data: the case itself and every model with a `patient`."""
    found = []
    for h in history_models():
        model = h.instance_type
        if model is Patient or any(f.name == "patient" for f in model._meta.fields):
            found.append(h)
    return sorted(found, key=lambda h: (h.instance_type is not Patient, h._meta.db_table))


def history_model_for(model_name):
    for h in audited_history_models():
        if h.instance_type._meta.model_name == model_name:
            return h
    raise LookupError(model_name)


# --- The view --------------------------------------------------------------------------------


def view_sql(connection, tables=None) -> str | None:
    q = connection.ops.quote_name
    patients = q(Patient._meta.db_table)
    patient_history = q(Patient.history.model._meta.db_table)
    parts = []
    for h in audited_history_models():
        if tables is not None and h._meta.db_table not in tables:
            continue
        model = h.instance_type
        name = model._meta.model_name
        if model is Patient:
            case, site, study, join = "h.id", "h.institution_id", "h.study_id", ""
        else:
            case = "h.patient_id"
            join = f"LEFT JOIN {patients} p ON p.id = h.patient_id"

            def latest(column):
                return (
                    f"(SELECT hp.{column} FROM {patient_history} hp WHERE hp.id = h.patient_id "
                    "ORDER BY hp.history_id DESC LIMIT 1)"
                )

            site = f"COALESCE(p.institution_id, {latest('institution_id')})"
            study = f"COALESCE(p.study_id, {latest('study_id')})"
        parts.append(
            f"SELECT CAST('{name}:' || CAST(h.history_id AS VARCHAR(20)) AS VARCHAR(64)) AS id, "
            f"CAST('{name}' AS VARCHAR(40)) AS model, h.history_id AS history_id, "
            f"h.id AS object_id, {case} AS patient_id, {study} AS study_id, "
            f"{site} AS institution_id, h.history_date AS history_date, "
            "h.history_user_id AS history_user_id, h.history_type AS history_type, "
            "h.history_change_reason AS history_change_reason "
            f"FROM {q(h._meta.db_table)} h {join}"
        )
    if not parts:
        return None
    return f"CREATE VIEW {q(VIEW)} AS " + " UNION ALL ".join(parts)


def drop_view(using="default", **kwargs):
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP VIEW IF EXISTS {connection.ops.quote_name(VIEW)}")


def create_view(using="default", **kwargs):
    connection = connections[using]
    tables = set(connection.introspection.table_names())
    if Patient._meta.db_table not in tables or Patient.history.model._meta.db_table not in tables:
        return
    drop_view(using)
    sql = view_sql(connection, tables)
    if sql:
        with connection.cursor() as cursor:
            cursor.execute(sql)


# --- Append-only history -----------------------------------------------------------------------


class AuditRecordProtected(PermissionDenied):
    pass


def _refuse_delete(sender, instance, **kwargs):
    raise AuditRecordProtected("Audit trail records cannot be deleted.")


def _refuse_rewrite(sender, instance, raw=False, **kwargs):
    if not instance._state.adding and not raw:
        raise AuditRecordProtected("Audit trail records cannot be changed.")


def connect(app_config):
    pre_migrate.connect(drop_view, sender=app_config, dispatch_uid="audit-view-drop")
    post_migrate.connect(create_view, sender=app_config, dispatch_uid="audit-view-create")
    for h in history_models():
        uid = f"append-only-{h._meta.label}"
        pre_delete.connect(_refuse_delete, sender=h, dispatch_uid=uid)
        pre_save.connect(_refuse_rewrite, sender=h, dispatch_uid=uid)


# --- What changed ------------------------------------------------------------------------------


def describe_changes(h, previous) -> str:
    model = h.instance_type
    if h.history_type == "+":
        return _("record created")
    if h.history_type == "-":
        return _("record removed")
    if previous is None:
        return _("saved (no earlier version kept)")
    changes = field_changes(h, previous)
    if not changes:
        return _("saved without changes")
    return "; ".join(
        f"{model._meta.get_field(name).verbose_name}: "
        f"{shown(model, name, old) or '—'} → {shown(model, name, new) or '—'}"
        for name, old, new in changes
    )


def describe_entries(entries) -> dict[str, str]:
    """{entry id: description of its changes} for AuditEntry rows, a few queries per model."""
    by_model = {}
    for e in entries:
        by_model.setdefault(e.model, []).append(e)
    described = {}
    for name, rows in by_model.items():
        h = history_model_for(name)
        object_ids = {e.object_id for e in rows}
        versions = {}
        for r in h.objects.filter(id__in=object_ids).order_by("id", "history_date", "history_id"):
            versions.setdefault(r.id, []).append(r)
        for e in rows:
            chain = versions.get(e.object_id, [])
            index = next((i for i, r in enumerate(chain) if r.history_id == e.history_id), None)
            if index is None:
                described[e.id] = ""
                continue
            previous = chain[index - 1] if index else None
            described[e.id] = describe_changes(chain[index], previous)
    return described


CSV_HEADER = [
    "when",
    "user",
    "site",
    "study_id",
    "model",
    "record_id",
    "action",
    "changes",
    "reason",
]


def write_csv(entries, out):
    """Write AuditEntry rows (any filtered queryset) as CSV, one row per audit record; text that
    a spreadsheet would run as a formula (a change reason `=HYPERLINK(...)`) is quoted."""
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    batch = []

    def flush():
        described = describe_entries(batch)
        for e in batch:
            writer.writerow(
                safe_row(
                    [
                        e.history_date.isoformat(),
                        e.history_user.get_username() if e.history_user else "system",
                        e.institution.code if e.institution else "",
                        e.study_id or "",
                        e.model,
                        e.object_id,
                        e.get_history_type_display().lower(),
                        described.get(e.id, ""),
                        e.history_change_reason or "",
                    ]
                )
            )
        batch.clear()

    for entry in entries.select_related("history_user", "institution").iterator(chunk_size=500):
        batch.append(entry)
        if len(batch) >= 500:
            flush()
    flush()
