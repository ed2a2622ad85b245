"""Settings and command arguments that a device model declares as data.

A declaration is a dict such as
    {"key": "volume", "label": "Volume", "type": "integer", "min": 0, "max": 100, "default": 50}
Types: integer, number, boolean, string (max_length), url, choice (choices: [value, ...]).
The same declarations build the portal's forms and validate what the API and bulk actions
receive, so a value is checked the same way wherever it comes from. Labels, help texts and
choices are written by vendor staff and shown to customers: they are plain text, checked for
shape here and escaped where the forms are built.
"""

import math
import re

from django import forms
from django.core.exceptions import ValidationError
from django.utils.html import escape

TYPES = ("integer", "number", "boolean", "string", "url", "choice")
KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_STRING = 1000
MAX_LABEL = 100
MAX_HELP = 300


def validate_text(container, name, limit, where):
    """`container[name]`, when present, must be text of at most `limit` characters."""
    value = container.get(name)
    if value is not None and not (isinstance(value, str) and len(value) <= limit):
        raise ValidationError(f"{where.capitalize()}: {name} must be text of at most {limit} characters.")


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _validate_shape(decl, where):
    """The parts a form field is built from have the types the form field needs."""
    validate_text(decl, "label", MAX_LABEL, where)
    validate_text(decl, "help", MAX_HELP, where)
    for bound in ("min", "max"):
        if bound in decl and not _is_number(decl[bound]):
            raise ValidationError(f"{where.capitalize()}: {bound} must be a number.")
    if "max_length" in decl:
        length = decl["max_length"]
        if isinstance(length, bool) or not isinstance(length, int) or not 1 <= length <= MAX_STRING:
            raise ValidationError(f"{where.capitalize()}: max_length must be a whole number from 1 to {MAX_STRING}.")
    if decl["type"] == "choice":
        choices = decl.get("choices")
        if not (isinstance(choices, list) and choices):
            raise ValidationError(f"{where.capitalize()}: a choice needs a non-empty list of choices.")
        if not all(isinstance(choice, str) and 0 < len(choice) <= MAX_LABEL for choice in choices):
            raise ValidationError(f"{where.capitalize()}: each choice must be text of 1 to {MAX_LABEL} characters.")


def validate_declarations(declarations, what="setting"):
    """Raise ValidationError naming the first malformed declaration in the list."""
    if not isinstance(declarations, list):
        raise ValidationError(f"The {what}s must be a list.")
    seen = set()
    for index, decl in enumerate(declarations, start=1):
        where = f"{what} {index}"
        if not isinstance(decl, dict):
            raise ValidationError(f"{where.capitalize()} must be an object.")
        key = decl.get("key")
        if not isinstance(key, str) or not KEY.fullmatch(key):
            raise ValidationError(f"{where.capitalize()}: key must be lower-case letters, digits and underscores.")
        if key in seen:
            raise ValidationError(f"{where.capitalize()}: the key {key!r} is used twice.")
        seen.add(key)
        if decl.get("type") not in TYPES:
            raise ValidationError(f"{where.capitalize()} ({key}): type must be one of {', '.join(TYPES)}.")
        _validate_shape(decl, f"{where} ({key})")
        if "default" in decl:
            try:
                clean_value(decl, decl["default"])
            except ValidationError as exc:
                raise ValidationError(
                    f"{where.capitalize()} ({key}): the default is invalid: {exc.messages[0]}"
                ) from exc


def validate_setting_declarations(value):
    validate_declarations(value, what="setting")


def validate_command_declarations(value):
    """A list of {"name", "label", "arguments": [declarations]}; see vendors/declarations.py."""
    if not isinstance(value, list):
        raise ValidationError("The commands must be a list.")
    names = set()
    for index, command in enumerate(value, start=1):
        name = command.get("name") if isinstance(command, dict) else None
        if not isinstance(name, str) or not KEY.fullmatch(name):
            raise ValidationError(f"Command {index}: name must be lower-case letters, digits and underscores.")
        if name in names:
            raise ValidationError(f"Command {index}: the name {name!r} is used twice.")
        names.add(name)
        validate_text(command, "label", MAX_LABEL, f"command {index}")
        validate_declarations(command.get("arguments", []), what=f"argument of {name}")


def form_field(decl, *, required=True):
    """A Django form field for one declaration."""
    # Django and crispy-forms render help texts as HTML; the vendor's is text.
    help_text = escape(decl.get("help", ""))
    common = {"label": decl.get("label") or decl["key"], "help_text": help_text, "required": required}
    kind = decl["type"]
    if kind == "integer":
        return forms.IntegerField(min_value=decl.get("min"), max_value=decl.get("max"), **common)
    if kind == "number":
        return forms.FloatField(min_value=decl.get("min"), max_value=decl.get("max"), **common)
    if kind == "boolean":
        return forms.BooleanField(**{**common, "required": False})
    if kind == "url":
        return forms.URLField(max_length=decl.get("max_length", 500), assume_scheme="https", **common)
    if kind == "choice":
        return forms.ChoiceField(choices=[(c, c) for c in decl["choices"]], **common)
    return forms.CharField(max_length=min(decl.get("max_length", 200), MAX_STRING), **common)


def clean_value(decl, value):
    """Validate one value against its declaration and return it in its JSON form."""
    if decl["type"] == "boolean" and not isinstance(value, bool):
        raise ValidationError(f"{decl.get('label', decl['key'])}: expected true or false.")
    if decl["type"] in ("integer", "number") and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValidationError(f"{decl.get('label', decl['key'])}: expected a number.")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError(f"{decl.get('label', decl['key'])}: expected a finite number.")
    if decl["type"] in ("string", "url", "choice") and not isinstance(value, str):
        raise ValidationError(f"{decl.get('label', decl['key'])}: expected text.")
    return form_field(decl).clean(value)


def clean_values(declarations, values):
    """Validate a {key: value} dict against the declarations: every declared key (required unless
    boolean or defaulted), no unknown key. Returns the cleaned dict; raises ValidationError
    with a dict of messages per key."""
    if not isinstance(values, dict):
        raise ValidationError("Expected an object of values.")
    errors, cleaned = {}, {}
    known = {decl["key"] for decl in declarations}
    for key in values.keys() - known:
        errors[key] = ["Unknown field."]
    for decl in declarations:
        key = decl["key"]
        if key not in values:
            if decl["type"] == "boolean":
                cleaned[key] = bool(decl.get("default", False))
            elif "default" in decl:
                cleaned[key] = decl["default"]
            else:
                errors[key] = ["This field is required."]
            continue
        try:
            cleaned[key] = clean_value(decl, values[key])
        except ValidationError as exc:
            errors[key] = exc.messages
    if errors:
        raise ValidationError(errors)
    return cleaned


def defaults(declarations):
    """The declared defaults, for a device that has no configuration saved yet."""
    return {decl["key"]: decl["default"] for decl in declarations if "default" in decl}
