"""The secret key of a deployment that did not set ``SECRET_KEY``: generated once, kept in a file.

Every process of one deployment (daphne, each qcluster, ``manage.py`` commands) must sign with
the same key, so it lives in the data directory rather than in memory. The file is published
atomically (written under a temporary name, then hard-linked into place), so processes that start
together never read a half-written key and never overwrite each other's: the first link wins and
the others read its key.
"""

import os
import secrets
import sys
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

FILE_NAME = "secret_key"
# Django's own generator uses 50 characters; token_urlsafe(48) gives 64 of the URL-safe alphabet.
KEY_BYTES = 48


def load_or_create(data_dir: Path) -> str:
    path = data_dir / FILE_NAME
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    draft = data_dir / f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_urlsafe(KEY_BYTES) + "\n")
        os.link(draft, path)
    except FileExistsError:
        return _read(path)
    finally:
        draft.unlink(missing_ok=True)
    print(
        f"SECRET_KEY is not set: generated one and kept it in {path} (readable by this user only). "
        "Every process of this deployment reads it from there.",
        file=sys.stderr,
    )
    return _read(path)


def _read(path: Path) -> str:
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{path} is empty: delete it to generate a new secret key")
    return key
