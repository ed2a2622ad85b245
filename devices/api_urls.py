from django.urls import path

from . import api

app_name = "device-api"

urlpatterns = [
    path("activations", api.ActivationsView.as_view(), name="activations"),
    path("activations/<str:operation_id>", api.ActivationView.as_view(), name="activation"),
    path("device/heartbeat", api.HeartbeatView.as_view(), name="heartbeat"),
    path("device/commands", api.CommandsView.as_view(), name="commands"),
    path("device/commands/<str:command_id>/result", api.CommandResultView.as_view(), name="command-result"),
    path("device/config", api.ConfigurationView.as_view(), name="config"),
    path("health", api.HealthView.as_view(), name="health"),
]
