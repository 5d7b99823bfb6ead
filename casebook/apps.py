from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CasebookConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "casebook"
    verbose_name = _("Case books")
