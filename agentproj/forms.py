"""Form fields shared by the admin pages."""

from django import forms
from django.core.exceptions import ValidationError
from django.db import models

from agentproj import json_limits

# What json_limits refuses in JSON that parses: said as it is. Other JSON is "Enter a valid JSON."
BEYOND_LIMITS = (json_limits.TOO_DEEP, json_limits.NOT_FINITE)


class BoundedJSONField(forms.JSONField):
    """JSON read as every entry point reads it (``json_limits``): a value nested deeper than
    ``MAX_DEPTH`` or holding NaN or Infinity is a form error, where Django's own field recursed
    into a ``RecursionError`` (a 500) on a couple of kilobytes of brackets."""

    def to_python(self, value):
        if self.disabled:
            return value
        if value in self.empty_values:
            return None
        if isinstance(value, list | dict | int | float | forms.fields.JSONString):
            return value
        try:
            converted = json_limits.loads(value)
        except json_limits.InvalidJson as problem:
            if problem.detail in BEYOND_LIMITS:
                raise ValidationError(problem.detail, code="invalid_json") from None
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None
        return forms.fields.JSONString(converted) if isinstance(converted, str) else converted

    def bound_data(self, data, initial):
        # The form shown again with what was sent: parsed the same bounded way.
        if self.disabled:
            return initial
        if data is None:
            return None
        try:
            return json_limits.loads(data)
        except json_limits.InvalidJson:
            return forms.fields.InvalidJSONInput(data)


# For a ModelAdmin whose model has JSON fields a person edits: ``formfield_overrides``.
BOUNDED_JSON_FIELDS = {models.JSONField: {"form_class": BoundedJSONField}}
