"""What a person may type: one rule for every entry point (API, pages, admin).

NUL cannot be stored by PostgreSQL; the other C0 control characters (tab and line breaks aside)
and the noncharacters U+FDD0-U+FDEF, U+FFFE and U+FFFF are never typed text and break pages, logs
or the model API further on. (Lone surrogates are not Unicode text at all: DRF's fields refuse
them and form data decoded from UTF-8 cannot hold them; a pattern naming them is not a valid
regular expression for most JSON Schema validators.)

The rules are regular expressions so that the OpenAPI schema states them as each field's
``pattern`` and clients can check before sending. They judge the text as sent: fields validate
it untrimmed (a control character at the end is refused, not silently cut), and the services
strip what they store. Both patterns are linear to match (no nested quantifiers).
"""

from django.core.validators import RegexValidator

FORBIDDEN = r"\x00-\x08\x0b\x0c\x0e-\x1f\ufdd0-\ufdef\ufffe\uffff"
# What Python's str.strip() removes, less the forbidden characters above.
SPACE = r"\t\n\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

# Django and DRF never run validators on an empty value, so "+" costs nothing and keeps the
# schema's "either this pattern or the empty string" (of a field that may be blank) unambiguous.
plain_text = RegexValidator(
    rf"^[^{FORBIDDEN}]+$",
    message="Control characters and Unicode noncharacters are not allowed.",
    code="invalid_characters",
)

# A message must say something: at least one character that is not a space.
plain_text_with_content = RegexValidator(
    rf"^[{SPACE}]*[^{FORBIDDEN}{SPACE}][^{FORBIDDEN}]*$",
    message="Write some text; control characters and Unicode noncharacters are not allowed.",
    code="invalid_characters",
)

TITLE_MAX_LENGTH = 200
CANCEL_REASON_MAX_LENGTH = 500
DECISION_REASON_MAX_LENGTH = 2000
