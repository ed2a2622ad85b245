"""The customer API's spaces (mounted by config/customer_api.py)."""

from uuid import UUID

from ninja import Router, Schema

from portal.api_errors import error_responses, refuse_unknown_parameters

from .models import Space

router = Router(tags=["spaces"])


class SpaceOut(Schema):
    id: UUID
    name: str


def space_data(space):
    return {"id": space.code, "name": space.name}


@router.get("", response={200: list[SpaceOut], **error_responses(400)}, summary="The organization's spaces, by name")
def list_spaces(request):
    refuse_unknown_parameters(request)
    return [space_data(space) for space in Space.objects.filter(organization_id=request.auth.organization_id)]
