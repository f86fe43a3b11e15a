"""``manage.py verify_receipt FILE``: exit 0 when the receipt in FILE is intact, 1 when it was
changed (or signed by another key), 2 when FILE is not a receipt file at all."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from approvals_app import receipts


class Command(BaseCommand):
    help = (
        "Check an approval receipt's signature: exit 0 intact, 1 changed, 2 not a JSON file. "
        "Uses this deployment's key unless --key names a public key (PEM)."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument(
            "--key", type=Path, help="A public key in PEM, as GET /api/approvals/receipt-key/."
        )

    def handle(self, *args, file, key, **options):
        # call_command passes options by name as given, without the parser's types.
        file, key = Path(file), Path(key) if key else None
        try:
            document = receipts.receipt_load(file)
            public_key = receipts.public_key_load(key.read_bytes()) if key else None
        except receipts.InvalidReceipt as exc:
            raise CommandError(str(exc), returncode=2) from None
        except OSError as exc:
            raise CommandError(
                f"{key}: cannot be read ({type(exc).__name__})", returncode=2
            ) from None
        if not receipts.receipt_verify(document, public_key):
            raise CommandError(
                "The receipt does not match its signature: it was changed, or signed with "
                "another key.",
                returncode=1,
            )
        self.stdout.write(f"The receipt of request {document['receipt']['request']} is intact.")
