"""Who is calling: Bearer access tokens to users, and the decorators handlers wear.

```python
@require_user
async def get_team(request: web.Request) -> web.Response:
    user = request[CURRENT_USER]
```
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiohttp import web

from errors import Forbidden, Unauthorized
from server.auth.tokens import AccessClaims
from server.state import TOKENS
from storage.users import UserRecord

CURRENT_USER = web.RequestKey("current_user", UserRecord)
ACCESS_CLAIMS = web.RequestKey("access_claims", AccessClaims)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_token(request: web.Request) -> str:
    """The token of an `Authorization: Bearer <token>` header.

    Raises:
        Unauthorized: no header, another scheme, or an empty token.
    """
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("a Bearer access token is required")
    return token


async def authenticate(request: web.Request) -> UserRecord:
    """The caller, from the Bearer access token; also stores it on the request.

    Raises:
        Unauthorized: no, malformed, expired or revoked token.
    """
    user, claims = await request.app[TOKENS].authenticate(bearer_token(request))
    request[CURRENT_USER] = user
    request[ACCESS_CLAIMS] = claims
    return user


def require_user(handler: Handler) -> Handler:
    """Run `handler` only for an authenticated caller, found in `request[CURRENT_USER]`."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        await authenticate(request)
        return await handler(request)

    return guarded


def require_admin(handler: Handler) -> Handler:
    """Like `require_user`, and 403 `forbidden` unless the caller's role is `admin`."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        user = await authenticate(request)
        if not user.is_admin:
            raise Forbidden("administrators only")
        return await handler(request)

    return guarded
