"""Build the deterministic demo registry: 16 sites, N synthetic patients, one user per role."""

import contextlib
import functools
import time

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from registry import demo, paper_twin
from registry.models import (
    AdverseEvent,
    Baseline,
    CrfStatus,
    Cycle,
    FollowUp,
    Institution,
    Membership,
    Patient,
    ResponseAssessment,
    SubsequentTherapy,
    Transplant,
)

DEMO_PASSWORD = "blina-demo-2026"
# (username, role, site codes, principal investigator, superuser)
DEMO_USERS = [
    ("admin", None, [], False, True),
    ("investigator", Membership.INVESTIGATOR, ["KR01"], True, False),
    ("investigator2", Membership.INVESTIGATOR, ["KR02", "KR03"], False, False),
    ("statistician", Membership.STATISTICIAN, ["KR01"], False, False),
    ("monitor", Membership.MONITOR, [code for code, _ in demo.INSTITUTIONS], False, False),
]
DEFAULT_SEED = 325  # the generator's default: 22/49 responders, as the paper
CASE_MODELS = [
    CrfStatus,
    AdverseEvent,
    ResponseAssessment,
    Cycle,
    Transplant,
    SubsequentTherapy,
    FollowUp,
    Baseline,
]
OTHER_MODELS = [Transplant, FollowUp, SubsequentTherapy]


class BulkWriter:
    """Inserts row dicts straight into a table: COPY on PostgreSQL, executemany elsewhere.

    The ORM's bulk_create builds a model instance per row, which is most of the time when the
    demo holds a million records. Rows here are already valid (the demo generator makes them so
    and a test runs full_clean() on the result); missing columns get the field's default.
    """

    def __init__(self):
        self.now = timezone.now()

    def insert(self, model, rows) -> list[int]:
        """Insert the rows with new primary keys; a model with a history gets each row's
        creation ("+") in its history table too, as a save() would have written it."""
        fields = [f for f in model._meta.concrete_fields if f is not model._meta.pk]
        rows = [{**self.defaults(fields), **row} for row in rows]
        ids = self._insert(model, rows)
        history = getattr(model, "history", None)
        if ids and history is not None:
            created = {
                "history_date": self.now,
                "history_type": "+",
                "history_change_reason": "demo data (seed_demo)",
                "history_user_id": None,
            }
            versions = [{**row, "id": pk, **created} for pk, row in zip(ids, rows, strict=True)]
            self._insert(history.model, versions)
        return ids

    def _insert(self, model, rows) -> list[int]:
        if not rows:
            return []
        fields = [f for f in model._meta.concrete_fields if f is not model._meta.pk]
        defaults = self.defaults(fields)
        pk = model._meta.pk
        first = (model._default_manager.aggregate(m=Max(pk.attname))["m"] or 0) + 1
        ids = list(range(first, first + len(rows)))
        names = [pk.attname, *(f.attname for f in fields)]
        values = [
            [pk, *(row.get(name, defaults[name]) for name in names[1:])]
            for pk, row in zip(ids, rows, strict=True)
        ]
        table = connection.ops.quote_name(model._meta.db_table)
        columns = ", ".join(connection.ops.quote_name(f.column) for f in [pk, *fields])
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in values:
                        copy.write_row(row)
                cursor.execute(
                    "SELECT setval(pg_get_serial_sequence(%s, %s), %s)",
                    [model._meta.db_table, pk.column, ids[-1]],
                )
            else:
                adapt = self.sqlite_adapters(fields)
                marks = ", ".join(["%s"] * len(names))
                cursor.executemany(
                    f"INSERT INTO {table} ({columns}) VALUES ({marks})",
                    [
                        [row[0], *(a(v) for a, v in zip(adapt, row[1:], strict=True))]
                        for row in values
                    ],
                )
        return ids

    def defaults(self, fields) -> dict:
        return {
            f.attname: self.now
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
            else f.get_default()
            for f in fields
        }

    @staticmethod
    def sqlite_adapters(fields):
        def plain(value):
            return value

        def text(value):
            return None if value is None else str(value)

        @functools.cache  # every row carries the same timestamp
        def moment(value):
            return connection.ops.adapt_datetimefield_value(value)

        kinds = {"DateField": text, "DateTimeField": moment, "DecimalField": text}
        return [kinds.get(f.get_internal_type(), plain) for f in fields]


@contextlib.contextmanager
def foreign_keys_checked_once(tables):
    """On PostgreSQL, drop the foreign keys of `tables` around a bulk write and add them back.

    Adding a foreign key checks every row in one join; left in place, each COPYed row queues a
    deferred check that runs (and locks its parent row) one by one at commit: a minute for the
    million rows of 100,000 patients. The constraints come back unchanged (pg_get_constraintdef)
    inside the same transaction, so a bad row still fails the whole command.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) "
            "FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s)",
            [[connection.ops.quote_name(t) for t in tables] + list(tables)],
        )
        keys = cursor.fetchall()
        # Checks still pending from earlier writes in this transaction block ALTER TABLE.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for table, name, _definition in keys:
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {connection.ops.quote_name(name)}")
    yield
    with connection.cursor() as cursor:
        for table, name, definition in keys:
            cursor.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {connection.ops.quote_name(name)} {definition}"
            )
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")


class Command(BaseCommand):
    help = "Replace the demo sites' cases with a deterministic synthetic registry."

    def add_arguments(self, parser):
        parser.add_argument(
            "--patients",
            type=int,
            default=50,
            help="50 (the default) loads the paper's twin, the synthetic reconstruction of the "
            "paper's cohort; any other number generates a registry of that size.",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=None,
            help=f"Seed of the generator (default {DEFAULT_SEED}); giving one means --generated.",
        )
        parser.add_argument(
            "--generated",
            action="store_true",
            help="Generate the registry at random even for 50 patients, instead of the twin.",
        )
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Run even with DEBUG off (it deletes the demo sites' cases).",
        )

    def handle(self, *args, patients, seed, generated, allow_production, **options):
        if not settings.DEBUG and not allow_production:
            raise CommandError("seed_demo replaces data; with DEBUG off pass --allow-production.")
        if not 1 <= patients <= 1_000_000:
            raise CommandError("--patients must be between 1 and 1,000,000.")
        twin = patients == 50 and seed is None and not generated
        seed = DEFAULT_SEED if seed is None else seed
        t0 = time.perf_counter()
        with transaction.atomic():
            sites = self.ensure_institutions(twin)
            self.delete_cases(sites)
            t1 = time.perf_counter()
            if twin:
                cases = paper_twin.build_twin(sites)
            else:
                cases = demo.build_registry(patients, seed, sites)
            t2 = time.perf_counter()
            with foreign_keys_checked_once([m._meta.db_table for m in [Patient, *CASE_MODELS]]):
                self.save(cases)
            t3 = time.perf_counter()
            self.ensure_users(sites)
            t4 = time.perf_counter()
        t5 = time.perf_counter()
        if connection.vendor == "postgresql":
            # Fresh planner statistics for the bulk-loaded tables: until autovacuum gets to them
            # the planner guesses their sizes (40% of the patients, a sixth of the cycles at
            # 100,000) and joins whole tables where an index lookup would do.
            with connection.cursor() as cursor:
                for table in [m._meta.db_table for m in [Patient, *CASE_MODELS]]:
                    cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
        elapsed = time.perf_counter() - t0
        what = "the paper's twin, synthetic" if twin else f"generated, seed {seed}"
        self.stdout.write(
            f"Demo registry: {patients} patients at {len(sites)} sites "
            f"({what}) in {elapsed:.1f} s: clear {t1 - t0:.1f} s, generate {t2 - t1:.1f} s, "
            f"write {t3 - t2:.1f} s, users {t4 - t3:.1f} s, commit {t5 - t4:.1f} s, "
            f"analyze {elapsed - (t5 - t0):.1f} s."
        )
        if twin:
            self.stdout.write(paper_twin.LABEL)
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for username, role, codes, pi, superuser in DEMO_USERS:
            what = "superuser (admin site)" if superuser else f"{role} at {', '.join(codes)}"
            if len(codes) > 3:
                what = f"{role} at all {len(codes)} sites"
            self.stdout.write(f"  {username:<14} {what}{' (PI)' if pi else ''}")
        self.write_two_factor_secrets()

    def write_two_factor_secrets(self):
        """Demo TOTP secrets of the users who need a second factor (security.demo)."""
        if not settings.DEBUG:
            return
        from security.demo import ensure_demo_devices

        rows = ensure_demo_devices([username for username, *_ in DEMO_USERS])
        when = (
            "asked at log-in"
            if settings.REQUIRE_2FA
            else "off in this demo; DJANGO_REQUIRE_2FA=1 turns it on"
        )
        self.stdout.write(f"Two-factor (TOTP) secrets for an authenticator app ({when}):")
        for username, secret, uri in rows:
            self.stdout.write(f"  {username:<14} secret {secret}  ({uri})")

    def ensure_institutions(self, twin=False):
        """The 16 demo sites; holding the twin, each name says it is a synthetic demo site."""
        sites = []
        for code, name in demo.INSTITUTIONS:
            name = name + paper_twin.SITE_SUFFIX if twin else name
            site, _ = Institution.objects.update_or_create(
                code=code, defaults={"name": name, "locked_at": None, "locked_by": None}
            )
            sites.append(site)
        return sites

    def delete_cases(self, sites):
        patients = Patient.objects.filter(institution__in=sites)
        # Other apps' rows about these cases (monitoring queries, findings, signatures): few.
        for relation in Patient._meta.related_objects:
            if relation.related_model._meta.app_label != "registry":
                lookup = {f"{relation.field.name}__in": patients}
                relation.related_model.objects.filter(**lookup).delete()
        tables = [m._meta.db_table for m in [*CASE_MODELS, Patient]]
        tables += [
            apps.get_model("registry", f"Historical{m.__name__}")._meta.db_table
            for m in [*CASE_MODELS, Patient]
        ]
        if (
            connection.vendor == "postgresql"
            and not Patient.objects.exclude(institution__in=sites).exists()
        ):
            # Only demo sites hold cases: emptying the tables beats deleting a million rows.
            with connection.cursor() as cursor:
                # Deferred foreign-key checks of earlier writes in this transaction block TRUNCATE.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                # CASCADE: other apps' tables that refer to the cases (emptied above).
                names = ", ".join(map(connection.ops.quote_name, tables))
                cursor.execute(f"TRUNCATE {names} CASCADE")
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            return
        # Raw deletes: the ORM's collector would load every record first.
        for model in CASE_MODELS:
            model.objects.filter(patient__in=patients)._raw_delete(model.objects.db)
        for model in [*CASE_MODELS, Patient]:
            history = apps.get_model("registry", f"Historical{model.__name__}")
            key = "id__in" if model is Patient else "patient_id__in"
            history.objects.filter(**{key: patients.values("pk")})._raw_delete(history.objects.db)
        patients._raw_delete(patients.db)

    def save(self, cases):
        """Write the row dicts with explicit primary keys, linking records by index."""
        writer = BulkWriter()
        patient_ids = writer.insert(Patient, [c.patient for c in cases])
        cycles, assessments, events, others = [], [], [], {m: [] for m in OTHER_MODELS}
        for case, pid in zip(cases, patient_ids, strict=True):
            case.baseline["patient_id"] = pid
            for row in case.cycles:
                row["patient_id"] = pid
                cycles.append(row)
        cycle_ids = iter(writer.insert(Cycle, cycles))
        for case in cases:
            ids = [next(cycle_ids) for _ in case.cycles]
            pid = case.baseline["patient_id"]
            for ci, row in case.assessments:
                assessments.append({**row, "patient_id": pid, "cycle_id": ids[ci]})
            for ci, row in case.adverse_events:
                cycle_id = ids[ci] if ci is not None else None
                events.append({**row, "patient_id": pid, "cycle_id": cycle_id})
            for model, rows in (
                (Transplant, [case.transplant]),
                (FollowUp, [case.followup]),
                (SubsequentTherapy, case.therapies),
            ):
                others[model] += [{**r, "patient_id": pid} for r in rows if r]
        writer.insert(Baseline, [c.baseline for c in cases])
        writer.insert(ResponseAssessment, assessments)
        writer.insert(AdverseEvent, events)
        for model, rows in others.items():
            writer.insert(model, rows)

    def ensure_users(self, sites):
        by_code = {s.code: s for s in sites}
        User = get_user_model()
        for username, role, codes, pi, superuser in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username)
            user.is_superuser = superuser
            user.is_staff = superuser or role == Membership.MONITOR  # monitors work in the admin
            if created or not user.check_password(DEMO_PASSWORD):
                user.set_password(DEMO_PASSWORD)
            user.save()
            Membership.objects.filter(user=user).exclude(institution__code__in=codes).delete()
            for code in codes:
                Membership.objects.update_or_create(
                    user=user,
                    institution=by_code[code],
                    defaults={"role": role, "is_principal_investigator": pi},
                )
