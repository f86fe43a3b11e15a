"""E-mail addresses in one canonical form, so that what a policy rule judges is where mail goes.

A recipient is one plain ``local@domain``: no display name, comment, angle brackets, quotes,
spaces or second address. Mail libraries read such extras in their own ways (Python's parser
drops a ``(comment)``; IDNA folds full-width letters into ASCII), so a rule that read the raw
text would judge another address than the one the mail is delivered to. Here the local part is
RFC 5322's dot-atom in ASCII, kept as written; the domain is NFKC-normalised, IDNA-encoded (the
UTS 46 mapping, which also lower-cases) and checked label by label as a host name. Anything
else is refused with ``InvalidAddress``; nothing is guessed.
"""

import re
import unicodedata

import idna

# RFC 5322 "atext", dot-separated (a dot-atom): what needs no quoting. ASCII only: a non-ASCII
# local part is written differently by every mailer (RFC 2047 words, SMTPUTF8).
LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
# A host name label once IDNA-encoded: letters, digits and inner hyphens (RFC 1123).
LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# RFC 5321's limits.
MAX_LOCAL_PART = 64
MAX_DOMAIN = 253
MAX_ADDRESS = 254

PLAIN_ADDRESS_RULE = (
    "must be one plain e-mail address such as name@example.com (no display name, comment, "
    "angle brackets, quotes, spaces or second address)"
)
DOMAIN_RULE = "is not a domain name such as example.com"


class InvalidAddress(ValueError):
    """Not one plain address (or domain) that normalises."""


def canonical_domain(text: str) -> str:
    """``text`` as an IDNA-encoded, lower-case domain of at least two labels (``example.com``,
    ``xn--bcher-kva.de``); ``InvalidAddress`` when it is not one. A trailing dot is refused:
    ``evil.com.`` reaches the same host as ``evil.com`` but would not compare equal to it."""
    folded = unicodedata.normalize("NFKC", text).lower()
    try:
        encoded = idna.encode(folded, uts46=True, std3_rules=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise InvalidAddress(DOMAIN_RULE) from None
    labels = encoded.split(".")
    if len(encoded) > MAX_DOMAIN or len(labels) < 2:
        raise InvalidAddress(DOMAIN_RULE)
    if not all(LABEL.fullmatch(label) for label in labels):
        raise InvalidAddress(DOMAIN_RULE)
    return encoded


def canonical_address(text: str) -> str:
    """``text`` as one canonical ``local@domain`` (see the module's docstring);
    ``InvalidAddress`` when it is anything else."""
    local, at, domain = text.partition("@")
    if not at or len(local) > MAX_LOCAL_PART or not LOCAL_PART.fullmatch(local):
        raise InvalidAddress(PLAIN_ADDRESS_RULE)
    # A second "@" stays in the domain, where IDNA refuses it.
    address = f"{local}@{canonical_domain(domain)}"
    if len(address) > MAX_ADDRESS:
        raise InvalidAddress(PLAIN_ADDRESS_RULE)
    return address
