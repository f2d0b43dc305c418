"""TOTP 2FA: setup with a QR code, enable with backup codes, login with a second factor."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from tests.accounts import signup
from tests.server.auth.conftest import enable_2fa, settle_totp_step, setup_secret, totp_at

SETUP, ENABLE, DISABLE = (
    "/api/v1/auth/2fa/setup",
    "/api/v1/auth/2fa/enable",
    "/api/v1/auth/2fa/disable",
)
LOGIN, ME = "/api/v1/auth/login", "/api/v1/me"


async def login(client, account, totp: str | None = None):
    body = {"email": account.email, "password": account.password}
    if totp is not None:
        body["totp"] = totp
    return await client.post(LOGIN, json=body)


async def test_setup_returns_the_secret_its_otpauth_uri_and_an_svg_qr_code(client) -> None:
    account = await signup(client)
    response = await client.post(SETUP, headers=account.headers)
    assert response.status == 200
    body = await response.json()
    assert set(body) == {"secret", "otpauth_uri", "qr_svg"}
    assert re.fullmatch(r"[A-Z2-7]{32}", body["secret"])
    uri = urlsplit(body["otpauth_uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert parse_qs(uri.query)["secret"] == [body["secret"]]
    assert parse_qs(uri.query)["issuer"] == ["Roomcast"]
    assert body["qr_svg"].startswith("<svg") and body["qr_svg"].rstrip().endswith("</svg>")
    me = await client.get(ME, headers=account.headers)
    assert (await me.json())["totp_enabled"] is False, "setup alone does not turn 2FA on"


async def test_enable_with_a_wrong_code_is_400_and_leaves_2fa_off(client) -> None:
    account = await signup(client)
    secret = await setup_secret(client, account)
    wrong = f"{(int(totp_at(secret)) + 1) % 1_000_000:06d}"
    response = await client.post(ENABLE, json={"code": wrong}, headers=account.headers)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid"
    assert (await login(client, account)).status == 200


async def test_enable_before_setup_is_400_and_twice_is_409(client) -> None:
    account = await signup(client)
    early = await client.post(ENABLE, json={"code": "123456"}, headers=account.headers)
    assert early.status == 400
    await enable_2fa(client, account)
    again = await client.post(SETUP, headers=account.headers)
    assert again.status == 409
    assert (await again.json())["error"]["code"] == "conflict"


async def test_enable_returns_ten_distinct_backup_codes_and_marks_the_user(client) -> None:
    account = await signup(client)
    _secret, codes = await enable_2fa(client, account)
    assert len(codes) == 10 == len(set(codes))
    assert all(re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", code) for code in codes)
    me = await client.get(ME, headers=account.headers)
    assert (await me.json())["totp_enabled"] is True


async def test_login_needs_a_totp_once_2fa_is_on(client) -> None:
    account = await signup(client)
    secret, _codes = await enable_2fa(client, account)
    missing = await login(client, account)
    assert missing.status == 401
    assert (await missing.json())["error"]["code"] == "totp_required"
    wrong = await login(client, account, "000000" if totp_at(secret) != "000000" else "111111")
    assert wrong.status == 401
    assert (await wrong.json())["error"]["code"] == "totp_required"
    ok = await login(client, account, totp_at(secret))
    assert ok.status == 200
    assert "access_token" in await ok.json()


async def test_a_wrong_password_with_a_right_totp_is_still_unauthorized(client) -> None:
    account = await signup(client)
    secret, _codes = await enable_2fa(client, account)
    response = await client.post(
        LOGIN, json={"email": account.email, "password": "Wrong-pass-123", "totp": totp_at(secret)}
    )
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"


async def test_a_totp_code_is_refused_on_its_second_use(client) -> None:
    account = await signup(client)
    secret, _codes = await enable_2fa(client, account)
    code = totp_at(secret)
    assert (await login(client, account, code)).status == 200
    replay = await login(client, account, code)
    assert replay.status == 401
    assert (await replay.json())["error"]["code"] == "totp_required"


async def test_a_code_of_an_earlier_step_than_the_last_used_is_refused(client) -> None:
    account = await signup(client)
    secret, _codes = await enable_2fa(client, account)
    assert (await login(client, account, totp_at(secret, +1))).status == 200
    assert (await login(client, account, totp_at(secret, 0))).status == 401


@pytest.mark.parametrize(("offset", "status"), [(-2, 400), (-1, 200), (0, 200), (1, 200), (2, 400)])
async def test_totp_codes_are_accepted_one_step_either_side_and_no_further(
    client, offset, status
) -> None:
    account = await signup(client)
    await settle_totp_step()
    secret = await setup_secret(client, account)
    response = await client.post(
        ENABLE, json={"code": totp_at(secret, offset)}, headers=account.headers
    )
    assert response.status == status


async def test_each_backup_code_logs_in_exactly_once(client) -> None:
    account = await signup(client)
    _secret, codes = await enable_2fa(client, account)
    assert (await login(client, account, codes[0].upper().replace("-", " "))).status == 200
    assert (await login(client, account, codes[0])).status == 401
    assert (await login(client, account, codes[1])).status == 200


async def test_disable_needs_a_valid_code_then_login_needs_none(client) -> None:
    account = await signup(client)
    secret, codes = await enable_2fa(client, account)
    wrong = await client.post(DISABLE, json={"code": "not-a-code"}, headers=account.headers)
    assert wrong.status == 400
    assert (await wrong.json())["error"]["code"] == "invalid"
    ok = await client.post(DISABLE, json={"code": totp_at(secret)}, headers=account.headers)
    assert ok.status == 204
    assert (await login(client, account)).status == 200
    me = await client.get(ME, headers=account.headers)
    assert (await me.json())["totp_enabled"] is False
    assert (await login(client, account, codes[0])).status == 200, "totp is ignored when off"
    not_on = await client.post(DISABLE, json={"code": codes[1]}, headers=account.headers)
    assert not_on.status == 409


async def test_disable_accepts_a_backup_code(client) -> None:
    account = await signup(client)
    _secret, codes = await enable_2fa(client, account)
    response = await client.post(DISABLE, json={"code": codes[3]}, headers=account.headers)
    assert response.status == 204
    assert (await login(client, account)).status == 200


async def test_a_fresh_setup_after_disable_uses_a_new_secret(client) -> None:
    account = await signup(client)
    secret, _codes = await enable_2fa(client, account)
    await client.post(DISABLE, json={"code": totp_at(secret)}, headers=account.headers)
    new_secret = await setup_secret(client, account)
    assert new_secret != secret
    old_code = pyotp.TOTP(secret).at(0)  # a code of the old secret, in no current window
    stale = await client.post(ENABLE, json={"code": old_code}, headers=account.headers)
    assert stale.status == 400
