"""The claiming methods the portal ships with. Vendors add others in the admin.

Plain data plus an installer that takes the model classes, so that the data migration
(with historical models) and the test factories (after a flush) install the same thing.
"""

SHIPPED_METHODS = [
    {
        "name": "Serial number + MAC address",
        "slug": "serial-mac",
        "fields": [
            {
                "key": "serial_number",
                "label": "Serial number",
                "help_text": "Printed on the label on the back of the device and on its box, after “S/N”.",
                "normalization": "text",
                "pattern": r"[A-Z0-9][A-Z0-9\-/]{2,31}",
                "format_hint": "3 to 32 letters, digits or dashes, e.g. AH2-260001",
            },
            {
                "key": "mac_address",
                "label": "MAC address",
                "help_text": "Printed on the same label, after “MAC”; also shown in the device's network menu.",
                "normalization": "mac",
                "pattern": r"([0-9A-F]{2}:){5}[0-9A-F]{2}",
                "format_hint": "12 hexadecimal digits, e.g. AA:BB:CC:DD:EE:FF, aa-bb-cc-dd-ee-ff or aabb.ccdd.eeff",
            },
        ],
    },
    {
        "name": "Serial number + claim code",
        "slug": "serial-claim-code",
        "requires_claim_code": True,
        "fields": [
            {
                "key": "serial_number",
                "label": "Serial number",
                "help_text": "Printed on the label on the bottom of the device, after “S/N”.",
                "normalization": "text",
                "pattern": r"[A-Z0-9][A-Z0-9\-/]{2,31}",
                "format_hint": "3 to 32 letters, digits or dashes, e.g. AC1-260001",
            },
        ],
    },
    {
        "name": "Device Cloud ID",
        "slug": "cloud-id",
        "fields": [
            {
                "key": "cloud_id",
                "label": "Device Cloud ID",
                "help_text": "Shown on the device's screen under Settings › Cloud monitoring, and on the box.",
                "normalization": "compact",
                "pattern": r"[A-Z2-7]{16}",
                "format_hint": "16 letters and digits 2–7, e.g. ABCD-EFGH-2345-6723",
            },
        ],
    },
]


def install_shipped_methods(claiming_method_model, identifier_field_model):
    """Create or update the shipped methods and their fields; idempotent."""
    # The historical model of the first data migration has no requires_claim_code yet.
    knows_claim_codes = any(field.name == "requires_claim_code" for field in claiming_method_model._meta.fields)
    for spec in SHIPPED_METHODS:
        method, _ = claiming_method_model.objects.get_or_create(slug=spec["slug"], defaults={"name": spec["name"]})
        if knows_claim_codes and method.requires_claim_code != spec.get("requires_claim_code", False):
            method.requires_claim_code = spec.get("requires_claim_code", False)
            method.save(update_fields=["requires_claim_code"])
        for position, field in enumerate(spec["fields"], start=1):
            defaults = {"position": position, **{k: v for k, v in field.items() if k != "key"}}
            identifier_field_model.objects.update_or_create(method=method, key=field["key"], defaults=defaults)
