"""What the websocket token check learned, kept in the process: users and sign-ins.

A reconnect storm checks the same few tokens many times, so the answers the check reads
(the user's record and token version from the database, whether the token's sign-in was
revoked from the key-value store and the database, and the claims of a token whose
signature was verified) are kept here for `ttl` seconds, at most `max_entries` of each.

A cache must never grant what the database has taken away. Every revocation reaches
`forget` on every instance through the control stream (server/control.py), synchronously
as the stream delivers it: a revoked sign-in is then remembered as revoked, a user whose
tokens were all revoked (logout-all, password change or reset) is read again. `epoch`
counts those deliveries; an answer read while one arrived is not kept
(`remember_*(..., epoch)`), and the token check redoes its reads (server/auth/tokens.py).
While the control stream may be missing events (its self-probe, server/probe.py, has not
heard itself for a few seconds: Redis down), nothing kept is trusted and all of it is
dropped: the check reads Redis and the database again, and fails `unavailable` with them.
The `ttl` is the backstop for a revocation the stream lost otherwise.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from server.auth.revocation import Revoked
from storage.users import UserRecord

if TYPE_CHECKING:
    from server.auth.tokens import AccessClaims

V = TypeVar("V")


class _Expiring(Generic[V]):
    """A bounded LRU map whose entries also expire."""

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self._data: OrderedDict[str, tuple[V, float]] = OrderedDict()
        self._max = max_entries
        self._now = clock

    def get(self, key: str) -> V | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[1] <= self._now():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return entry[0]

    def put(self, key: str, value: V, ttl: float) -> None:
        self._data[key] = (value, self._now() + ttl)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    def pop(self, key: str) -> None:
        self._data.pop(key, None)

    def __len__(self) -> int:
        return len(self._data)


class VerifiedCache:
    """Users and sign-in revocations as the token check last read them, invalidated by
    revocations (`forget`); and the claims of tokens whose signature it verified."""

    def __init__(
        self,
        *,
        ttl: float,
        revoked_ttl: float,
        max_entries: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`ttl`: how long a user or a live sign-in is trusted; `revoked_ttl`: how long a
        revoked sign-in is remembered (an access token's lifetime: its tokens are then all
        expired)."""
        self._ttl = ttl
        self._revoked_ttl = revoked_ttl
        self._users: _Expiring[UserRecord] = _Expiring(max_entries, clock)
        self._families: _Expiring[bool] = _Expiring(max_entries, clock)
        self._signed: _Expiring[AccessClaims] = _Expiring(max_entries, clock)
        self._max = max_entries
        self._clock = clock
        self._healthy: Callable[[], bool] = lambda: True
        self.epoch = 0

    def trust_while(self, healthy: Callable[[], bool]) -> None:
        """Trust what is kept only while `healthy()`: the control stream delivers."""
        self._healthy = healthy

    def usable(self) -> bool:
        """Whether the check may answer from here; when the control stream is not known to
        deliver, everything kept is dropped first (it may predate a revocation it missed)."""
        if self._ttl <= 0:
            return False
        if self._healthy():
            return True
        self.epoch += 1  # and a check that read before keeps nothing
        if len(self._users) or len(self._families):
            self._users = _Expiring(self._max, self._clock)
            self._families = _Expiring(self._max, self._clock)
        return False

    @property
    def enabled(self) -> bool:
        return self._ttl > 0 and self._healthy()

    def signed(self, token: str) -> AccessClaims | None:
        """The claims of a token whose signature was verified here, until it expires."""
        return self._signed.get(_token_key(token))

    def remember_signed(self, token: str, claims: AccessClaims) -> None:
        """Keep a verified token's claims (only the same string, byte for byte, finds them:
        a signature says nothing of another payload) no later than its expiry."""
        ttl = min(self._ttl, claims.expires_at - time.time())
        if ttl > 0:
            self._signed.put(_token_key(token), claims, ttl)

    def user(self, user_id: str) -> UserRecord | None:
        return self._users.get(user_id)

    def family_revoked(self, family_id: str) -> bool | None:
        """True revoked, False live, None not known here."""
        return self._families.get(family_id)

    def remember_user(self, user: UserRecord, epoch: int) -> None:
        """Keep `user`, read when `epoch` was current, unless a revocation came since."""
        if epoch == self.epoch and self.enabled:
            self._users.put(user.id, user, self._ttl)

    def remember_family(self, family_id: str, revoked: bool, epoch: int) -> None:
        """Keep whether a sign-in is revoked, read when `epoch` was current, unless a
        revocation came since."""
        if epoch != self.epoch or not self.enabled:
            return
        if revoked:
            self._families.put(family_id, True, self._revoked_ttl)
        elif self._families.get(family_id) is None:
            self._families.put(family_id, False, self._ttl)

    def forget(self, revoked: Revoked) -> None:
        """A revocation was delivered: nothing read before it answers for its tokens."""
        self.epoch += 1
        if revoked.family_id is None:
            self._users.pop(revoked.user_id)
        elif self.enabled:
            self._families.put(revoked.family_id, True, self._revoked_ttl)
        else:
            self._families.pop(revoked.family_id)

    def forget_user(self, user_id: str) -> None:
        """The user's record changed (a new name): read it again."""
        self.epoch += 1
        self._users.pop(user_id)

    def sizes(self) -> tuple[int, int]:
        """Entries held: (users, sign-ins)."""
        return len(self._users), len(self._families)


def _token_key(token: str) -> str:
    """What a verified token is kept under: its 128-bit BLAKE2b digest, 32 characters
    instead of the whole token's few hundred (one token per session, kept for its life).
    Another string finding these claims would take a second preimage of the digest."""
    return hashlib.blake2b(token.encode(), digest_size=16).hexdigest()
