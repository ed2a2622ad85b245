from django.apps import AppConfig


class ReleaseRequestsConfig(AppConfig):
    name = "releaserequests"
    verbose_name = "release requests"

    def ready(self):
        from devices.signals import device_released

        from .rules import close_on_release

        # Every release closes the requests about the device, whoever releases it and how.
        device_released.connect(close_on_release, dispatch_uid="releaserequests.close_on_release")
