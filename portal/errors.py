"""The base of every refusal whose message is written for the person (or device maker) who sees it."""


class UserFacingError(Exception):
    """A rule refused what was asked; `message` is shown as is (as text, never as markup).

    Subclasses add what their callers need (a code, the field at fault); the message stays the
    exception's one public attribute for the user.
    """

    def __init__(self, message):
        super().__init__(message)
        self.message = message
