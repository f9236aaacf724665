"""The entry of a report (a reclamation pass's, a drift reconcile's): what became of one resource or
object, as fields. Pages, commands and metrics classify entries by `outcome`, never by their text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from django.db import models

OutcomeT = TypeVar("OutcomeT", bound=models.TextChoices)


@dataclass(frozen=True)
class ReportEntry(Generic[OutcomeT]):
    """One line of a report: its outcome, the resource it is about ("" when none, e.g. a mail), the
    name it is shown by, and what happened (for people)."""

    outcome: OutcomeT
    resource_id: str
    name: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}" if self.name and self.detail else self.name or self.detail


class Entries(Generic[OutcomeT]):
    """What a report with typed entries can answer: its entries of some outcomes, their text (for
    people), and how many there are of each outcome (for the metrics)."""

    entries: list[ReportEntry[OutcomeT]]
    outcome_type: ClassVar[type[models.TextChoices]]

    def of(self, *outcomes: OutcomeT) -> list[ReportEntry[OutcomeT]]:
        return [e for e in self.entries if e.outcome in outcomes]

    def texts(self, *outcomes: OutcomeT) -> list[str]:
        return [str(e) for e in self.of(*outcomes)]

    def counts(self) -> dict[str, int]:
        """Entries per outcome, every outcome (zero included), by each entry's `outcome`."""
        counts = {str(o.value): 0 for o in self.outcome_type}
        for entry in self.entries:
            counts[str(entry.outcome.value)] += 1
        return counts


def texts_of(*outcomes: models.TextChoices) -> Any:
    """A read-only attribute of an `Entries` report: the text of its entries of `outcomes`."""
    return property(lambda report: report.texts(*outcomes))
