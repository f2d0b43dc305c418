"""Accounts and authentication: /api/v1/auth/*, /api/v1/me.

Handlers parse, delegate to the auth services and answer. Every /auth/* route is
rate-limited per client IP before anything else happens.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from aiohttp import web

from server import control
from server.auth import bodies
from server.auth.guard import ACCESS_CLAIMS, CURRENT_USER, Handler, require_user
from server.auth.revocation import Revocations
from server.auth.services import auth_services
from server.http import shapes
from server.http.json import T, json_response, parse_body
from server.http.operation import answers
from server.state import (
    ACCOUNTS,
    RATE_LIMITER,
    RECOVERY,
    REVOCATIONS,
    SETTINGS,
    TOKENS,
    TWO_FACTOR,
)

PREFIX = "/api/v1"


def rate_limited(name: str) -> Callable[[Handler], Handler]:
    """Refuse (429 with Retry-After) past the per-IP limit of endpoint `name`."""

    def decorate(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def limited(request: web.Request) -> web.StreamResponse:
            settings = request.app[SETTINGS]
            await request.app[RATE_LIMITER].hit(
                f"auth:{name}:{request.remote or 'unknown'}",
                limit=settings.auth_rate_limit,
                window=settings.auth_rate_window,
            )
            return await handler(request)

        return limited

    return decorate


async def parse_optional_body(request: web.Request, model: type[T]) -> T:
    """Like `parse_body`, but an empty body means `{}` (endpoints whose fields are optional)."""
    if not request.body_exists:
        return model()
    return await parse_body(request, model)


def no_content() -> web.Response:
    return web.Response(status=204)


def accepted() -> web.Response:
    return web.Response(status=202)


@answers(201, shapes.User, errors=(409, 429), public=True)
@rate_limited("register")
async def register(request: web.Request) -> web.Response:
    """Create an account (email, password, display name); it owns a personal team."""
    body = await parse_body(request, bodies.Register)
    user = await request.app[ACCOUNTS].register(body.email, body.password, body.name)
    return json_response(user.to_json(), status=201)


@answers(200, shapes.Tokens, errors=(401, 423, 429), public=True)
@rate_limited("login")
async def login(request: web.Request) -> web.Response:
    """Sign in with email and password (and a TOTP or backup code once 2FA is on)."""
    body = await parse_body(request, bodies.Login)
    tokens = await request.app[ACCOUNTS].login(body.email, body.password, body.totp)
    return json_response(tokens.to_json())


@answers(200, shapes.Tokens, errors=(401, 429), public=True)
@rate_limited("refresh")
async def refresh(request: web.Request) -> web.Response:
    """Trade a refresh token for a new token pair; the old refresh token is spent."""
    body = await parse_body(request, bodies.Refresh)
    tokens = await request.app[TOKENS].rotate(body.refresh_token)
    return json_response(tokens.to_json())


@answers(204, errors=(429,))
@rate_limited("logout")
@require_user
async def logout(request: web.Request) -> web.Response:
    """Revoke this access token and, when given, the refresh token."""
    body = await parse_optional_body(request, bodies.Logout)
    await request.app[ACCOUNTS].logout(
        request[CURRENT_USER], request[ACCESS_CLAIMS], body.refresh_token
    )
    return no_content()


@answers(204, errors=(429,))
@rate_limited("logout-all")
@require_user
async def logout_all(request: web.Request) -> web.Response:
    """Revoke every token of the caller, on every device."""
    await parse_optional_body(request, bodies.Empty)
    await request.app[ACCOUNTS].logout_all(request[CURRENT_USER])
    return no_content()


@answers(202, errors=(429,), public=True)
@rate_limited("otp-request")
async def otp_request(request: web.Request) -> web.Response:
    """Send a one-time login code to an email address or a phone number."""
    body = await parse_body(request, bodies.OtpRequest)
    await request.app[RECOVERY].request_login_code(email=body.email, phone=body.phone)
    return accepted()


@answers(200, shapes.Tokens, errors=(401, 429), public=True)
@rate_limited("otp-verify")
async def otp_verify(request: web.Request) -> web.Response:
    """Sign in with a one-time login code."""
    body = await parse_body(request, bodies.OtpVerify)
    tokens = await request.app[RECOVERY].login_with_code(
        email=body.email, phone=body.phone, code=body.code, totp=body.totp
    )
    return json_response(tokens.to_json())


@answers(202, errors=(429,), public=True)
@rate_limited("password-forgot")
async def password_forgot(request: web.Request) -> web.Response:
    """Mail a password reset code (answered alike whether the account exists)."""
    body = await parse_body(request, bodies.ForgotPassword)
    await request.app[RECOVERY].request_reset_code(body.email)
    return accepted()


@answers(204, errors=(401, 429), public=True)
@rate_limited("password-reset")
async def password_reset(request: web.Request) -> web.Response:
    """Set a new password with a reset code; every session is signed out."""
    body = await parse_body(request, bodies.ResetPassword)
    await request.app[RECOVERY].reset_password(body.email, body.code, body.new_password)
    return no_content()


@answers(204, errors=(423, 429))
@rate_limited("password-change")
@require_user
async def password_change(request: web.Request) -> web.Response:
    """Change the password, knowing the current one."""
    body = await parse_body(request, bodies.ChangePassword)
    await request.app[ACCOUNTS].change_password(
        request[CURRENT_USER], request[ACCESS_CLAIMS], body.current_password, body.new_password
    )
    return no_content()


@answers(200, shapes.TotpSetup, errors=(409, 429))
@rate_limited("2fa-setup")
@require_user
async def totp_setup(request: web.Request) -> web.Response:
    """Start two-factor setup: a new TOTP secret, as a URI and a QR code."""
    await parse_optional_body(request, bodies.Empty)
    setup = await request.app[TWO_FACTOR].setup(request[CURRENT_USER])
    return json_response(setup.to_json())


@answers(200, shapes.BackupCodes, errors=(409, 429))
@rate_limited("2fa-enable")
@require_user
async def totp_enable(request: web.Request) -> web.Response:
    """Turn two-factor on with a code of the new secret; answers the backup codes."""
    body = await parse_body(request, bodies.TotpCode)
    codes = await request.app[TWO_FACTOR].enable(request[CURRENT_USER], body.code)
    return json_response({"backup_codes": codes})


@answers(204, errors=(409, 429))
@rate_limited("2fa-disable")
@require_user
async def totp_disable(request: web.Request) -> web.Response:
    """Turn two-factor off with a TOTP or backup code."""
    body = await parse_body(request, bodies.TotpCode)
    await request.app[TWO_FACTOR].disable(request[CURRENT_USER], body.code)
    return no_content()


@answers(200, shapes.User)
@require_user
async def get_me(request: web.Request) -> web.Response:
    """The caller's account."""
    return json_response(request[CURRENT_USER].to_json())


@answers(200, shapes.User)
@require_user
async def patch_me(request: web.Request) -> web.Response:
    """Change the caller's display name."""
    body = await parse_body(request, bodies.UpdateMe)
    user = request[CURRENT_USER]
    if body.name is not None:
        user = await request.app[ACCOUNTS].rename(user, body.name)
        await control.user_changed(request.app, user.id)
    return json_response(user.to_json())


def setup(app: web.Application) -> None:
    """Register the routes and the services behind them."""
    app[REVOCATIONS] = Revocations()  # now, so other modules may register before startup
    app.cleanup_ctx.append(auth_services)
    routes = [
        ("/auth/register", register),
        ("/auth/login", login),
        ("/auth/refresh", refresh),
        ("/auth/logout", logout),
        ("/auth/logout-all", logout_all),
        ("/auth/otp/request", otp_request),
        ("/auth/otp/verify", otp_verify),
        ("/auth/password/forgot", password_forgot),
        ("/auth/password/reset", password_reset),
        ("/auth/password/change", password_change),
        ("/auth/2fa/setup", totp_setup),
        ("/auth/2fa/enable", totp_enable),
        ("/auth/2fa/disable", totp_disable),
    ]
    for path, handler in routes:
        app.router.add_post(PREFIX + path, handler)
    app.router.add_get(PREFIX + "/me", get_me)
    app.router.add_patch(PREFIX + "/me", patch_me)
