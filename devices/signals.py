"""Signals of the device lifecycle, for apps that keep records about a device beside its own."""

from django.dispatch import Signal

# Sent by actions.release_device inside its transaction, with the locked `device` (already
# released) and `organization_id`, the organization that held it.
device_released = Signal()
