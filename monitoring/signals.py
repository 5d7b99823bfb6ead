"""Model-layer hooks: a change to a case record, on any path (web, admin, import, API), clears the
verification of its CRF, voids the case's signature and is noted on open queries about it."""

from django.db.models.signals import post_delete, post_save

from registry.models import CASE_MODELS

from . import services


def _saved(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    services.record_changed(instance, "created" if created else "changed")


def _deleted(sender, instance, **kwargs):
    services.record_changed(instance, "removed")


def connect():
    # Connected after simple_history's own receivers, so the historical record of the change
    # (who, what, why) exists when ours run.
    for model in CASE_MODELS:
        uid = f"monitoring-{model.__name__}"
        post_save.connect(_saved, sender=model, dispatch_uid=uid)
        post_delete.connect(_deleted, sender=model, dispatch_uid=uid)
