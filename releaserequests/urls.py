from django.urls import path

from . import views

urlpatterns = [
    path("o/<uuid:code>/release-requests/", views.ReleaseRequestListView.as_view(), name="release-requests"),
    path("o/<uuid:code>/release-requests/ask/", views.AskReleaseView.as_view(), name="release-request-ask"),
    path(
        "release-requests/<uuid:code>/release/", views.ReleaseForRequestView.as_view(), name="release-request-release"
    ),
    path("release-requests/<uuid:code>/decline/", views.DeclineRequestView.as_view(), name="release-request-decline"),
    path("release-requests/<uuid:code>/claim/", views.ClaimReleasedView.as_view(), name="release-request-claim"),
]
