from django.urls import path

from . import claim_file_views, claim_views, views

urlpatterns = [
    path("spaces/<uuid:code>/bulk/", views.SpaceBulkActionView.as_view(), name="space-bulk-action"),
    path("spaces/<uuid:code>/claim/", claim_views.ClaimDeviceWizardView.as_view(), name="claim-device"),
    path("spaces/<uuid:code>/claim/file/", claim_file_views.ClaimFileView.as_view(), name="claim-file"),
    path(
        "spaces/<uuid:code>/claim/file/confirm/",
        claim_file_views.ClaimFileConfirmView.as_view(),
        name="claim-file-confirm",
    ),
    path(
        "spaces/<uuid:code>/claim/file/template/",
        claim_file_views.ClaimFileTemplateView.as_view(),
        name="claim-file-template",
    ),
    path("claim/label/", claim_views.ClaimLabelSpaceView.as_view(), name="claim-label-space"),
    path("claim/label/<str:payload>/", claim_views.ClaimLabelView.as_view(), name="claim-label"),
    path("devices/<uuid:code>/", views.DeviceDetailView.as_view(), name="device-detail"),
    path("devices/<uuid:code>/commands/", views.DeviceCommandsView.as_view(), name="device-commands"),
    path("devices/<uuid:code>/commands/send/", views.SendCommandView.as_view(), name="device-send-command"),
    path("devices/<uuid:code>/configuration/", views.SaveConfigurationView.as_view(), name="device-configuration"),
    path("devices/<uuid:code>/rename/", views.RenameDeviceView.as_view(), name="device-rename"),
    path("devices/<uuid:code>/move/", views.MoveDeviceView.as_view(), name="device-move"),
    path("devices/<uuid:code>/reactivation/", views.AllowReactivationView.as_view(), name="device-reactivation"),
    path("devices/<uuid:code>/release/", views.ReleaseDeviceView.as_view(), name="device-release"),
    path("devices/<uuid:code>/reset-key/", views.ResetDeviceKeyView.as_view(), name="device-reset-key"),
]
