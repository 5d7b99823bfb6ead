from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Data monitoring"

    def ready(self):
        from . import audit, signals

        signals.connect()
        audit.connect(self)
