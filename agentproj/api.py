"""What every API of the project shares: strict input fields, the error body and the answers
every endpoint may give, and the query string as a serializer reads it."""

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """Text, and only text: DRF's CharField turns a number into a string, where the schema says
    the field is a string and a client sending 0 for a title has a bug worth hearing about."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """An id, and only an id: DRF's field looks up "3" (and True) as 3, where the schema says the
    field is an integer."""

    def to_internal_value(self, data):
        if type(data) is not int:
            self.fail("incorrect_type", data_type=type(data).__name__)
        return super().to_internal_value(data)


class ErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()


# Every endpoint answers 403 to a request without a valid login or token (session authentication
# comes first, and it sends no WWW-Authenticate challenge, so DRF answers 403 rather than 401).
AUTH_ERRORS = {403: ErrorSerializer}
# Sending, cancelling, deciding, changing sessions and reading events are rate-limited per user
# (``API_THROTTLE_RATES``); a turn beyond ``MAX_ACTIVE_TURNS_PER_USER`` is refused with 429 too.
THROTTLED_ERRORS = {429: ErrorSerializer}


def query_params(request) -> dict[str, str]:
    """The query string as a plain dict for a serializer: given a QueryDict, DRF reads an empty
    value as "not given", so ``?after=`` would pass where the schema says it is no integer."""
    return request.query_params.dict()
