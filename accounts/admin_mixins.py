"""Admin pieces shared by the apps."""


class ReadOnlyAdminMixin:
    """For rows written only by a domain function (logs, invitations, activation operations): the
    admin shows them and never adds or edits them. `deletable` keeps or takes away deletion;
    logs set it False, since nobody edits history. Put it before ModelAdmin in the bases."""

    deletable = True

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return self.deletable and super().has_delete_permission(request, obj)
