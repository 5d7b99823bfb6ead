from django.apps import AppConfig


class ExchangeConfig(AppConfig):
    name = "exchange"
    verbose_name = "Data exchange"

    def ready(self):
        from .tokens import connect_signals

        connect_signals()  # API tokens are revoked when the password changes
