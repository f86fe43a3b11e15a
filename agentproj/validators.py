"""What a person may type, and what may reach a person's eyes: one rule for every entry point
(API, pages, admin) and for text a model or a configuration produced (tool arguments, MCP headers).

NUL cannot be stored by PostgreSQL; the other C0 control characters (tab and line breaks aside)
and the noncharacters U+FDD0-U+FDEF, U+FFFE and U+FFFF are never typed text and break pages, logs
or the model API further on. (Lone surrogates are not Unicode text at all: DRF's fields refuse
them and form data decoded from UTF-8 cannot hold them; a pattern naming them is not a valid
regular expression for most JSON Schema validators.)

Text that other people read as it stands (a title in an approver's e-mail, a tool's arguments on
an approval card, a header sent to a server) is held to a stricter rule, ``human_text``: no DEL or
C1 controls either (ESC's 8-bit twin among them), and no bidirectional embeddings, overrides or
isolates, which make a reader see other characters in another order than the ones that run. A
single line (titles, header values) holds no line break of any kind.

The rules are regular expressions so that the OpenAPI schema states them as each field's
``pattern`` and clients can check before sending. They judge the text as sent: fields validate
it untrimmed (a control character at the end is refused, not silently cut), and the services
strip what they store. Every pattern is linear to match (no nested quantifiers).
"""

import re

from django.core.validators import RegexValidator

FORBIDDEN = r"\x00-\x08\x0b\x0c\x0e-\x1f\ufdd0-\ufdef\ufffe\uffff"
# DEL and the C1 controls; the bidirectional embeddings and overrides (U+202A-U+202E) and
# isolates (U+2066-U+2069). The marks U+200E/U+200F stay allowed: right-to-left text needs them.
NOT_FOR_READERS = r"\x7f-\x9f\u202a-\u202e\u2066-\u2069"
LINE_BREAKS = r"\n\r\x85\u2028\u2029"
# What Python's str.strip() removes, less the forbidden characters above.
SPACE = r"\t\n\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

INVALID_CHARACTERS = "invalid_characters"
PLAIN_TEXT_MESSAGE = "Control characters and Unicode noncharacters are not allowed."
HUMAN_TEXT_MESSAGE = (
    "Control characters, bidirectional text controls and Unicode noncharacters are not allowed."
)
ONE_LINE_MESSAGE = (
    "Line breaks, control characters, bidirectional text controls and Unicode noncharacters "
    "are not allowed."
)

# Django and DRF never run validators on an empty value, so "+" costs nothing and keeps the
# schema's "either this pattern or the empty string" (of a field that may be blank) unambiguous.
plain_text = RegexValidator(
    rf"^[^{FORBIDDEN}]+$", message=PLAIN_TEXT_MESSAGE, code=INVALID_CHARACTERS
)

# A message must say something: at least one character that is not a space.
plain_text_with_content = RegexValidator(
    rf"^[{SPACE}]*[^{FORBIDDEN}{SPACE}][^{FORBIDDEN}]*$",
    message="Write some text; control characters and Unicode noncharacters are not allowed.",
    code=INVALID_CHARACTERS,
)

human_text = RegexValidator(
    rf"^[^{FORBIDDEN}{NOT_FOR_READERS}]+$", message=HUMAN_TEXT_MESSAGE, code=INVALID_CHARACTERS
)

# "$(?!\n)": Python's "$" also matches before a final line break, which this rule refuses;
# the lookahead keeps the pattern one that OpenAPI clients (ECMAScript) read the same way.
one_line_text = RegexValidator(
    rf"^[^{FORBIDDEN}{NOT_FOR_READERS}{LINE_BREAKS}]+$(?!\n)",
    message=ONE_LINE_MESSAGE,
    code=INVALID_CHARACTERS,
)

_NOT_HUMAN_TEXT = re.compile(rf"[{FORBIDDEN}{NOT_FOR_READERS}]")
_NOT_ONE_LINE = re.compile(rf"[{FORBIDDEN}{NOT_FOR_READERS}{LINE_BREAKS}]")


def text_problem(value: str, *, one_line: bool = False) -> str:
    """Why ``value`` may not reach a reader (``human_text``, or ``one_line_text``), naming the
    first offending character by its code point but never echoing the text: it may be a secret
    (a header's value). "" when it may."""
    found = (_NOT_ONE_LINE if one_line else _NOT_HUMAN_TEXT).search(value)
    if found is None:
        return ""
    message = ONE_LINE_MESSAGE if one_line else HUMAN_TEXT_MESSAGE
    return f"{message} (U+{ord(found.group()):04X} at position {found.start() + 1})"
