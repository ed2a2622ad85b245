from django.contrib.auth import views as auth_views
from django.urls import path

from . import views
from .forms import EmailAuthenticationForm

urlpatterns = [
    path(
        "login/",
        auth_views.LoginView.as_view(authentication_form=EmailAuthenticationForm, redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password/change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password/reset/", auth_views.PasswordResetView.as_view(), name="password_reset"),
    path("password/reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("password/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("invitations/<str:token>/", views.InvitationAcceptView.as_view(), name="invitation-accept"),
    path("o/<uuid:code>/members/", views.MembersView.as_view(), name="members"),
    path("o/<uuid:code>/members/<int:pk>/role/", views.ChangeRoleView.as_view(), name="member-role"),
    path("o/<uuid:code>/members/<int:pk>/remove/", views.RemoveMemberView.as_view(), name="member-remove"),
    path(
        "o/<uuid:code>/invitations/<int:pk>/withdraw/",
        views.WithdrawInvitationView.as_view(),
        name="invitation-withdraw",
    ),
    path("o/<uuid:code>/leave/", views.LeaveOrganizationView.as_view(), name="organization-leave"),
    path("o/<uuid:code>/audit/", views.AuditLogView.as_view(), name="audit-log"),
    path("o/<uuid:code>/audit.csv", views.AuditLogCsvView.as_view(), name="audit-log-csv"),
]
