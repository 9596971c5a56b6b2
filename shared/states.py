"""Transition tables for the domain's state machines, and the 409 an illegal step answers.

Hand-written on purpose: the machines here are checks over stored documents ("may this
aggregate go from that state to this one, and if not, what may it do?"), not objects with
callbacks. Libraries such as `transitions` or `python-statemachine` model the latter and
would wrap every stored document in a model object for what is a table lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from fastapi import status

from shared.errors import DomainError

S = TypeVar("S", bound=StrEnum)


class IllegalTransition(DomainError):
    """HTTP 409 whose body names the current state and the states allowed from it."""

    def __init__(self, reason: str, *, current: str, allowed: list[str], field: str | None) -> None:
        super().__init__(
            reason,
            field=field,
            status_code=status.HTTP_409_CONFLICT,
            extra={"current_state": current, "allowed": allowed},
        )
        self.current = current
        self.allowed = allowed


@dataclass(frozen=True)
class StateMachine(Generic[S]):
    """The allowed transitions of one kind of aggregate (e.g. a cohort)."""

    name: str
    transitions: Mapping[S, tuple[S, ...]]

    def allowed(self, current: S) -> list[S]:
        return list(self.transitions.get(current, ()))

    def can(self, current: S, target: S) -> bool:
        return target in self.transitions.get(current, ())

    def is_terminal(self, current: S) -> bool:
        return not self.transitions.get(current, ())

    def check(self, current: S, target: S, *, ident: str = "", field: str | None = None) -> None:
        """Raise `IllegalTransition` unless `current -> target` is allowed."""
        if self.can(current, target):
            return
        allowed = [s.value for s in self.allowed(current)]
        what = f"{self.name} {ident!r}" if ident else f"the {self.name}"
        nxt = f"it can go to: {', '.join(allowed)}" if allowed else "it cannot change any more"
        raise IllegalTransition(
            f"{what} is {current.value} and cannot become {target.value}; {nxt}",
            current=current.value,
            allowed=allowed,
            field=field,
        )
