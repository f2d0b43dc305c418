"""The hook other layers use to hear that a user's tokens were all revoked.

Logout-all, password change and password reset call `Revocations.user_revoked(user_id)`;
the websocket layer registers a callback that closes that user's live sessions with 4401.

Across instances: once `route_through` is given a publisher (server/control.py does it
at start-up), `user_revoked` publishes `{"type": "user_revoked", "user_id"}` on the
`control` topic, and every instance's control reader calls `notify_local(user_id)`, this
one's included. When publishing fails, only this process's callbacks run; elsewhere the
revoked tokens still fail at their next check (token version, denylist).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

RevokedCallback = Callable[[str], Awaitable[None] | None]


class Revocations:
    """A registry of `on_user_revoked(user_id)` callbacks, sync or async."""

    def __init__(self) -> None:
        self._callbacks: list[RevokedCallback] = []
        self._route: Callable[[str], Awaitable[None]] | None = None

    def route_through(self, publish: Callable[[str], Awaitable[None]] | None) -> None:
        """Send revocations through `publish` (the control stream) so every instance hears
        them, its own included; without a route, or when publishing fails, only this
        process's callbacks run."""
        self._route = publish

    def register(self, callback: RevokedCallback) -> Callable[[], None]:
        """Call `callback(user_id)` on every revocation; returns a function that unregisters."""
        self._callbacks.append(callback)

        def unregister() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return unregister

    async def user_revoked(self, user_id: str) -> None:
        """Every token of `user_id` was revoked: tell whoever holds their live sessions."""
        if self._route is not None:
            try:
                await self._route(user_id)
                return
            except Exception as exc:  # the bus is down: at least this instance acts
                logger.warning("revocation for user=%s not routed: %r", user_id, exc)
        await self.notify_local(user_id)

    async def notify_local(self, user_id: str) -> None:
        """Run this process's callbacks; one failing callback does not stop the others."""
        for callback in tuple(self._callbacks):
            try:
                result = callback(user_id)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # a broken listener must not undo the revocation itself
                logger.exception("revocation callback failed for user=%s", user_id)
