"""The API tokens page of an organization (owners and admins): create, list, revoke. Thin views:
the rules are apitokens/tokens.py's."""

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect
from django.views.generic import FormView, TemplateView

from accounts.access import MANAGE
from accounts.views import OrganizationMixin

from .forms import ApiTokenForm
from .tokens import create_token, revoke_token


class ApiTokensView(OrganizationMixin, FormView):
    """The organization's tokens, and a form for a new one. The new token's text is in the
    answer to the POST only (not in a URL, a message or the session), so it is shown once; the
    same page's form sent again (a reload) creates none (portal/sent_once.py)."""

    ability = MANAGE
    template_name = "apitokens/api_tokens.html"
    form_class = ApiTokenForm

    def get_context_data(self, **kwargs):
        tokens = self.organization.api_tokens.select_related("created_by")
        return super().get_context_data(tokens=tokens, **kwargs)

    def form_valid(self, form):
        created = form.created_once(
            lambda: create_token(
                self.organization,
                name=form.cleaned_data["name"],
                role=form.cleaned_data["role"],
                expires_at=form.expires_at(),
                actor=self.request.user,
            )
        )
        if created is None:  # the page that showed the token, reloaded
            return self.form_invalid(form)
        token, raw = created
        response = self.render_to_response(self.get_context_data(form=ApiTokenForm(), created=token, raw_token=raw))
        response["Cache-Control"] = "no-store"
        return response


class RevokeApiTokenView(OrganizationMixin, TemplateView):
    """Asks before revoking (GET); the POST revokes the token at once."""

    ability = MANAGE
    template_name = "apitokens/api_token_revoke.html"

    def token(self):
        return get_object_or_404(self.organization.api_tokens, code=self.kwargs["token"])

    def get_context_data(self, **kwargs):
        return super().get_context_data(api_token=self.token(), **kwargs)

    def post(self, request, code, token):
        revoked = revoke_token(self.token(), actor=request.user)
        messages.success(request, f"The token “{revoked.name}” is revoked: its requests are refused from now on.")
        return redirect("api-tokens", code=code)
