"""Signed receipts of executed approved calls (DESIGN §5a): what was approved, by whom, under
which rule, and proof of what ran and what the model was given back.

A receipt is ``{"receipt": {...}, "signature": <base64 Ed25519 over the canonical JSON of
"receipt">}``; anyone with the public key (``GET /api/approvals/receipt-key/``) can check it, and
changing any field breaks the signature. The private key comes from ``APPROVAL_RECEIPT_KEY``, else
from a file generated once in ``DATA_DIR``: every process of a deployment must sign with the
same key, so it is published atomically (written under a temporary name, then hard-linked into
place) and processes that start together never make two.
"""

import base64
import binascii
import functools
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from approvals_app.models import ApprovalRequest, ApprovalStatus, Decision
from approvals_app.policies import TOOL_DEFAULT

KEY_FILE = "approval_receipt_key.pem"
RECEIPT_FIELDS = (
    "request",
    "tool",
    "arguments_sha256",
    "approvers",
    "rule",
    "executed_at",
    "result_sha256",
)


class InvalidReceipt(Exception):
    """Not a receipt at all: not JSON, or not the shape of one."""


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def result_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def is_executed(approval: ApprovalRequest) -> bool:
    return (
        approval.status == ApprovalStatus.APPROVED
        and approval.executed_at is not None
        and bool(approval.result_sha256)
    )


def may_read(user, approval: ApprovalRequest) -> bool:
    """A request's receipt is for those who decided it, the one who asked and superusers."""
    return (
        user.is_superuser
        or user.pk == approval.turn.session.owner_id
        or approval.decisions.filter(approver=user).exists()
    )


def receipt_of(approval: ApprovalRequest) -> dict[str, Any]:
    """The signed receipt of an executed approved call (``is_executed``)."""
    approvers = [
        {
            "user": decision.approver.get_username() if decision.approver else None,
            "at": decision.at.isoformat(),
        }
        for decision in approval.decisions.select_related("approver")
        if decision.decision == Decision.APPROVE
        and decision.arguments_hash == approval.arguments_hash
    ]
    receipt = {
        "request": approval.pk,
        "tool": approval.tool_name,
        # The claim ran the call only while the arguments hashed to this (records.execution_claim).
        "arguments_sha256": approval.arguments_hash,
        "approvers": approvers,
        "rule": approval.rule_name or TOOL_DEFAULT,
        "executed_at": approval.executed_at.isoformat(),
        "result_sha256": approval.result_sha256,
    }
    signature = signing_key().sign(canonical(receipt))
    return {"receipt": receipt, "signature": base64.b64encode(signature).decode()}


def receipt_verify(document: Any, public_key: Ed25519PublicKey | None = None) -> bool:
    """Whether ``document`` is a receipt signed by the key (this deployment's by default)."""
    if not isinstance(document, dict) or set(document) != {"receipt", "signature"}:
        return False
    receipt, signature = document["receipt"], document["signature"]
    if not isinstance(receipt, dict) or set(receipt) != set(RECEIPT_FIELDS):
        return False
    if not isinstance(signature, str):
        return False
    try:
        raw = base64.b64decode(signature, validate=True)
        (public_key or signing_key().public_key()).verify(raw, canonical(receipt))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def receipt_load(path: Path) -> Any:
    """The JSON in a receipt file; ``InvalidReceipt`` when it cannot be read as JSON."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidReceipt(f"{path} is not a JSON file ({type(exc).__name__})") from None


def public_key_pem() -> str:
    return (
        signing_key()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def public_key_load(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise InvalidReceipt("the key file is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise InvalidReceipt("the key file is not an Ed25519 public key")
    return key


def signing_key() -> Ed25519PrivateKey:
    return _signing_key(settings.APPROVAL_RECEIPT_KEY, Path(settings.DATA_DIR))


@functools.lru_cache(maxsize=4)
def _signing_key(configured: str, data_dir: Path) -> Ed25519PrivateKey:
    if configured:
        return _parsed(configured.strip().encode(), source="APPROVAL_RECEIPT_KEY")
    return _load_or_create(data_dir / KEY_FILE)


def _parsed(text: bytes, *, source: str) -> Ed25519PrivateKey:
    try:
        if b"-----BEGIN" in text:
            key = serialization.load_pem_private_key(text, password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except (ValueError, TypeError, binascii.Error):
        # The key's own text never goes into an error: it is a secret.
        raise ImproperlyConfigured(
            f"{source} is neither an Ed25519 private key in PEM nor 32 bytes in base64"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"{source} is not an Ed25519 key")
    return key


def _load_or_create(path: Path) -> Ed25519PrivateKey:
    try:
        return _parsed(path.read_bytes(), source=str(path))
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    draft = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(pem)
        # The first process to link wins; the others read its key.
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink(missing_ok=True)
    return _parsed(path.read_bytes(), source=str(path))
