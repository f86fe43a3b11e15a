"""The API's request body parser: JSON read the one bounded way (``json_limits``)."""

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from agentproj import json_limits


class InvalidJsonBody(ParseError):
    """400 ``invalid_json``: the body is not JSON, too deeply nested, or holds a number that is
    not finite. Its detail is ``json_limits``' own wording, never the parser's exception text."""

    default_code = "invalid_json"
    default_detail = "The body is not valid JSON."


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser recursed into a ``RecursionError`` (a 500) on a body of a thousand
    nested brackets; this one refuses anything deeper than ``json_limits.MAX_DEPTH``."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            return json_limits.loads(stream.read().decode(encoding))
        except UnicodeDecodeError:
            raise InvalidJsonBody() from None
        except json_limits.InvalidJson as problem:
            raise InvalidJsonBody(problem.detail) from None
