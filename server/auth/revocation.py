"""The hook other layers use to hear that tokens were revoked: all of a user's, or one sign-in's.

Logout-all, password change and password reset call `Revocations.user_revoked(user_id)`;
logout and the reuse of a spent refresh token call `sign_in_revoked(user_id, family_id)`
(a sign-in is a refresh family, the `sid` of its access tokens). The websocket layer
registers callbacks that close the matching live sessions with 4401; caches of what a
token check read listen (`listen`) and forget it as soon as a revocation is heard.

Across instances: once `route_through` is given a publisher (server/control.py does it
at start-up), each revocation is published on the `control` topic, and every instance's
control reader calls `heard` as it reads the event (the caches forget at once) and then
`run_callbacks`, this one's included. When publishing fails, only
this process's callbacks run; elsewhere the revoked tokens still fail at their next check
(token version, revoked family).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from storage.bus import BUS_FAILED

logger = logging.getLogger(__name__)

RevokedCallback = Callable[[str], Awaitable[None] | None]
RevokedListener = Callable[["Revoked"], None]
SignInRevokedCallback = Callable[[str, str], Awaitable[None] | None]
C = TypeVar("C", RevokedCallback, SignInRevokedCallback)


@dataclass(frozen=True, slots=True)
class Revoked:
    """Every token of `user_id` was revoked, or only those of the sign-in `family_id`."""

    user_id: str
    family_id: str | None = None


class Revocations:
    """A registry of callbacks, sync or async: `on_user_revoked(user_id)` and
    `on_sign_in_revoked(user_id, family_id)`."""

    def __init__(self) -> None:
        self._callbacks: list[RevokedCallback] = []
        self._sign_in_callbacks: list[SignInRevokedCallback] = []
        self._listeners: list[RevokedListener] = []
        self._route: Callable[[Revoked], Awaitable[None]] | None = None

    def route_through(self, publish: Callable[[Revoked], Awaitable[None]] | None) -> None:
        """Send revocations through `publish` (the control stream) so every instance hears
        them, its own included; without a route, or when publishing fails, only this
        process's callbacks run."""
        self._route = publish

    def register(self, callback: RevokedCallback) -> Callable[[], None]:
        """Call `callback(user_id)` on every revocation of all of a user's tokens; returns
        a function that unregisters."""
        return _add(self._callbacks, callback)

    def register_sign_in(self, callback: SignInRevokedCallback) -> Callable[[], None]:
        """Call `callback(user_id, family_id)` on every revocation of one sign-in; returns a
        function that unregisters."""
        return _add(self._sign_in_callbacks, callback)

    def listen(self, listener: RevokedListener) -> None:
        """Call `listener(revoked)` synchronously on every revocation heard, before any
        callback: a cache that must forget before the next check."""
        self._listeners.append(listener)

    async def user_revoked(self, user_id: str) -> None:
        """Every token of `user_id` was revoked: tell whoever holds their live sessions."""
        await self._announce(Revoked(user_id))

    async def sign_in_revoked(self, user_id: str, family_id: str) -> None:
        """The tokens of one sign-in of `user_id` were revoked: tell whoever holds its
        live sessions."""
        await self._announce(Revoked(user_id, family_id))

    async def _announce(self, revoked: Revoked) -> None:
        if self._route is not None:
            try:
                await self._route(revoked)
                return
            except BUS_FAILED as exc:  # the bus is down: at least this instance acts
                logger.warning("revocation %s not routed: %r", revoked, exc)
        await self.notify_local(revoked)

    async def notify_local(self, revoked: Revoked) -> None:
        """`heard`, then `run_callbacks`."""
        self.heard(revoked)
        await self.run_callbacks(revoked)

    def heard(self, revoked: Revoked) -> None:
        """Tell the listeners (caches), synchronously: no check that starts after this
        returns can pass on what they held."""
        for listener in self._listeners:
            listener(revoked)

    async def run_callbacks(self, revoked: Revoked) -> None:
        """Run this process's callbacks; one failing callback does not stop the others."""
        family_id = revoked.family_id
        if family_id is None:
            for callback in tuple(self._callbacks):
                await _guarded(revoked, callback, revoked.user_id)
        else:
            for sign_in_callback in tuple(self._sign_in_callbacks):
                await _guarded(revoked, sign_in_callback, revoked.user_id, family_id)


async def _guarded(
    revoked: Revoked, callback: Callable[..., Awaitable[None] | None], *args: str
) -> None:
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:  # a broken listener must not undo the revocation itself
        logger.exception("revocation callback failed for %s", revoked)


def _add(callbacks: list[C], callback: C) -> Callable[[], None]:
    callbacks.append(callback)

    def unregister() -> None:
        if callback in callbacks:
            callbacks.remove(callback)

    return unregister
