"""Build the deterministic demo registry: 16 sites, N synthetic patients, one user per role."""

import time

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from registry import demo
from registry.models import (
    AdverseEvent,
    Baseline,
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
CASE_MODELS = [
    AdverseEvent,
    ResponseAssessment,
    Cycle,
    Transplant,
    SubsequentTherapy,
    FollowUp,
    Baseline,
]
BATCH = 5000


class Command(BaseCommand):
    help = "Replace the demo sites' cases with a deterministic synthetic registry."

    def add_arguments(self, parser):
        parser.add_argument("--patients", type=int, default=50)
        parser.add_argument("--seed", type=int, default=361)  # 22/49 responders, as the paper
        parser.add_argument(
            "--allow-production",
            action="store_true",
            help="Run even with DEBUG off (it deletes the demo sites' cases).",
        )

    def handle(self, *args, patients, seed, allow_production, **options):
        if not settings.DEBUG and not allow_production:
            raise CommandError("seed_demo replaces data; with DEBUG off pass --allow-production.")
        if not 1 <= patients <= 1_000_000:
            raise CommandError("--patients must be between 1 and 1,000,000.")
        t0 = time.perf_counter()
        with transaction.atomic():
            sites = self.ensure_institutions()
            self.delete_cases(sites)
            cases = demo.build_registry(patients, seed, sites)
            self.save(cases)
            self.ensure_users(sites)
        elapsed = time.perf_counter() - t0
        self.stdout.write(
            f"Demo registry: {patients} patients at {len(sites)} sites "
            f"(seed {seed}) in {elapsed:.1f} s."
        )
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for username, role, codes, pi, superuser in DEMO_USERS:
            what = "superuser (admin site)" if superuser else f"{role} at {', '.join(codes)}"
            if len(codes) > 3:
                what = f"{role} at all {len(codes)} sites"
            self.stdout.write(f"  {username:<14} {what}{' (PI)' if pi else ''}")

    def ensure_institutions(self):
        sites = []
        for code, name in demo.INSTITUTIONS:
            site, _ = Institution.objects.update_or_create(code=code, defaults={"name": name})
            sites.append(site)
        return sites

    def delete_cases(self, sites):
        # Raw deletes: the demo can hold 100,000 cases and the ORM's collector would load them all.
        patients = Patient.objects.filter(institution__in=sites)
        for model in CASE_MODELS:
            model.objects.filter(patient__in=patients)._raw_delete(model.objects.db)
        for model in [*CASE_MODELS, Patient]:
            history = apps.get_model("registry", f"Historical{model.__name__}")
            key = "id__in" if model is Patient else "patient_id__in"
            history.objects.filter(**{key: patients.values("pk")})._raw_delete(history.objects.db)
        patients._raw_delete(patients.db)

    def save(self, cases):
        Patient.objects.bulk_create([c.patient for c in cases], batch_size=BATCH)
        for c in cases:  # bulk_create filled in the primary keys; refresh the foreign keys
            for obj in self.records(c):
                obj.patient = c.patient
        Baseline.objects.bulk_create([c.baseline for c in cases], batch_size=BATCH)
        Cycle.objects.bulk_create([cy for c in cases for cy in c.cycles], batch_size=BATCH)
        for c in cases:
            for ci, a in c.assessments:
                a.cycle = c.cycles[ci]
            for ci, ae in c.adverse_events:
                ae.cycle = c.cycles[ci] if ci is not None else None
        ResponseAssessment.objects.bulk_create(
            [a for c in cases for _, a in c.assessments], batch_size=BATCH
        )
        AdverseEvent.objects.bulk_create(
            [ae for c in cases for _, ae in c.adverse_events], batch_size=BATCH
        )
        Transplant.objects.bulk_create([c.transplant for c in cases if c.transplant], BATCH)
        SubsequentTherapy.objects.bulk_create([t for c in cases for t in c.therapies], BATCH)
        FollowUp.objects.bulk_create([c.followup for c in cases if c.followup], BATCH)

    @staticmethod
    def records(case):
        yield case.baseline
        yield from case.cycles
        yield from (a for _, a in case.assessments)
        yield from (ae for _, ae in case.adverse_events)
        yield from case.therapies
        if case.transplant:
            yield case.transplant
        if case.followup:
            yield case.followup

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
