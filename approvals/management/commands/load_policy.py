"""`manage.py load_policy FILE`: validate a YAML approval policy and put it in force."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from approvals.policy import PolicyError
from approvals.services import policy_load


class Command(BaseCommand):
    help = "Replace the approval policy with FILE. A bad file changes nothing and exits non-zero."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="YAML policy (see CONTRACT.md §4)")

    def handle(self, *args, file: str, **options) -> None:
        path = Path(file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from exc
        try:
            row, policy = policy_load(source=text, origin=str(path), actor=None)
        except PolicyError as exc:
            raise CommandError(f"{path}: {exc}. The policy in force is unchanged.") from exc
        rules = ", ".join(f"{r.name} ({len(r.steps)} step{'s' if len(r.steps) != 1 else ''})" for r in policy.rules)
        self.stdout.write(f"Policy #{row.pk} from {path} is in force: {rules}")
