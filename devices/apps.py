from django.apps import AppConfig


class DevicesConfig(AppConfig):
    name = "devices"

    def ready(self):
        # Connects the signal handlers that keep activation's model cache fresh.
        from . import activation  # noqa: F401
