import uuid

from django.db import models


class SpaceQuerySet(models.QuerySet):
    def for_user(self, user):
        """The spaces of the organizations `user` is a member of: the one way views look spaces up."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(organization__memberships__user=user)


class Space(models.Model):
    """A place in a customer organization (building, room, site) that devices are claimed into."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    organization = models.ForeignKey("accounts.Organization", on_delete=models.CASCADE, related_name="spaces")
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = SpaceQuerySet.as_manager()

    class Meta:
        ordering = ["organization", "name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="space_unique_name_per_org"),
            # Target of the devices' composite foreign key (space, organization): a device's
            # space always belongs to the device's organization.
            models.UniqueConstraint(fields=["id", "organization"], name="space_unique_id_org"),
        ]

    def __str__(self):
        return self.name
