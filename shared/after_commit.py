"""Run a callback once the MongoDB transaction a session is in has committed.

A wake-up sent from inside a transaction can reach the woken task before the commit: it then
reads nothing new and sleeps until its next timer (this cost the e-mail step a p99 of
seconds). PyMongo has no commit hook, so one is attached to the session object: its
`commit_transaction`, which both `with_transaction` and `start_transaction()` end in, is
wrapped once per session to run the callbacks after a successful commit; an abort drops
them (a retried transaction registers them again). Whoever runs the transaction needs to
know nothing about it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from shared.mongo import Session

log = logging.getLogger(__name__)

_HOOKS = "_after_commit_hooks"


def after_commit(session: Session | None, callback: Callable[[], None]) -> None:
    """Call `callback` after the session's transaction commits; at once when there is no
    transaction (the writes are already applied). The same callback registered twice in one
    transaction runs once."""
    if session is None or not session.in_transaction:
        callback()
        return
    hooks: list[Callable[[], None]] | None = getattr(session, _HOOKS, None)
    if hooks is None:
        hooks = []
        setattr(session, _HOOKS, hooks)
        _wrap(session, hooks)
    if callback not in hooks:
        hooks.append(callback)


def _wrap(session: Session, hooks: list[Callable[[], None]]) -> None:
    commit = session.commit_transaction
    abort = session.abort_transaction

    async def commit_then_run() -> None:
        await commit()
        due = list(hooks)
        hooks.clear()
        for callback in due:
            try:
                callback()
            except Exception:
                log.exception("after-commit callback failed")

    async def abort_and_forget() -> None:
        hooks.clear()
        await abort()

    setattr(session, "commit_transaction", commit_then_run)  # noqa: B010
    setattr(session, "abort_transaction", abort_and_forget)  # noqa: B010
