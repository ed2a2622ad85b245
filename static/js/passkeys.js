// After a passkey is added (django-otp-webauthn's event), show it: reload the page, or go on to
// where the person was headed when they were asked to set up a second factor.
document.addEventListener("otp_webauthn.register_complete", () => {
  const next = document.getElementById("passkey-registered-next");
  window.location.assign(next ? next.href : window.location.href);
});
