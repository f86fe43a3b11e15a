"""What a person may type: one rule for every entry point (API, pages, admin).

NUL cannot be stored by PostgreSQL; the other C0 control characters (tab and line breaks aside),
lone surrogates and the noncharacters U+FDD0-U+FDEF, U+FFFE and U+FFFF are never typed text and
break pages, logs or the model API further on. The rule is a regular expression so that the
OpenAPI schema states it as the field's ``pattern`` and clients can check it before sending.
"""

from django.core.validators import RegexValidator

PLAIN_TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]*$"

plain_text = RegexValidator(
    PLAIN_TEXT_PATTERN,
    message="Control characters and Unicode noncharacters are not allowed.",
    code="invalid_characters",
)

TITLE_MAX_LENGTH = 200
CANCEL_REASON_MAX_LENGTH = 500
DECISION_REASON_MAX_LENGTH = 2000
