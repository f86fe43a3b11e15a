"""``manage.py check_invariants``: the contract's invariants over the whole database."""

import json

from django.core.management.base import BaseCommand, CommandError

from sessions_app import invariants


class Command(BaseCommand):
    help = (
        "Check every turn, event and approval against the invariants of DESIGN.md section 3; "
        "exits with 1 and lists the violations if there are any."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--idle",
            action="store_true",
            help="the workers are idle: also report any turn still queued, running, waiting, "
            "stopping or pending",
        )
        parser.add_argument(
            "--json", dest="as_json", action="store_true", help="print one JSON object"
        )

    def handle(self, *args, idle, as_json, **options):
        found = invariants.find_violations(idle=idle)
        counts = invariants.summary()
        if as_json:
            self._print_json(found, counts)
        else:
            self._print_text(found, counts, idle)
        if found:
            raise CommandError(f"{len(found)} invariant violations", returncode=1)

    def _print_json(self, found, counts) -> None:
        report = {
            "counts": counts,
            "violations": [
                {"invariant": v.invariant, "subject": v.subject, "detail": v.detail} for v in found
            ],
        }
        self.stdout.write(json.dumps(report))

    def _print_text(self, found, counts, idle: bool) -> None:
        self.stdout.write(", ".join(f"{name}: {n}" for name, n in counts.items()))
        by_invariant: dict[str, int] = {}
        for violation in found:
            by_invariant[violation.invariant] = by_invariant.get(violation.invariant, 0) + 1
        for name, meaning in invariants.INVARIANTS.items():
            if name == "no_active_turn_when_idle" and not idle:
                continue
            wrong = by_invariant.get(name, 0)
            self.stdout.write(f"{'FAIL' if wrong else 'ok  '} {meaning}: {wrong} violations")
        for violation in found:
            self.stdout.write(str(violation))
