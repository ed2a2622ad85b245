"""A task the real-worker test sends to prove the wiring: broker (Redis) -> worker process -> PostgreSQL."""

from celery import shared_task

from devices.models import Device, DeviceEvent


@shared_task(acks_late=True)
def rename_from_worker(device_id, name):
    device = Device.objects.get(pk=device_id)
    device.name = name
    device.save(update_fields=["name"])
    DeviceEvent.objects.create(device=device, kind=DeviceEvent.Kind.RENAMED, details={"to": name, "by": "worker"})
