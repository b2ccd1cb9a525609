"""How far a ``set_many`` got, for the error that reports an interruption."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import SetManyInterruptedError, StoreUnavailableError

__all__ = ["Progress"]


@dataclass
class Progress:
    """Each item's outcome once decided (None until then), and the items sent but undecided."""

    outcomes: list[bool | BaseException | None]
    sent: set[int] = field(default_factory=set)

    def interrupted(self, exc: StoreUnavailableError) -> SetManyInterruptedError:
        """The error for a ``set_many`` cut short by ``exc``, saying per item what is known."""
        unknown = sorted(self.sent)
        decided = sum(o is not None for o in self.outcomes)
        return SetManyInterruptedError(
            f"{exc} [set_many: {decided} of {len(self.outcomes)} items decided, {len(unknown)} sent with "
            "an unknown outcome, the rest not sent; see .outcomes, .unknown and .not_sent]",
            list(self.outcomes),
            unknown,
        )
