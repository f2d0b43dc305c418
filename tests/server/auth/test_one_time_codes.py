"""Passwordless login by emailed or texted code, and password reset by emailed code."""

from __future__ import annotations

from sqlalchemy import func, select, update

from server.state import REVOCATIONS
from storage.models import OtpCode, User
from tests.accounts import DEFAULT_PASSWORD, signup, unique_email
from tests.server.auth.conftest import (
    enable_2fa,
    eventually_equal,
    mailed_code,
    messages_to,
    row_counts,
    totp_at,
)

OTP_REQUEST, OTP_VERIFY = "/api/v1/auth/otp/request", "/api/v1/auth/otp/verify"
FORGOT, RESET = "/api/v1/auth/password/forgot", "/api/v1/auth/password/reset"
LOGIN, ME = "/api/v1/auth/login", "/api/v1/me"
PHONE = "+4915112345678"


def other_code(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def test_otp_request_is_202_whether_or_not_the_email_exists(client, database) -> None:
    account = await signup(client)
    stranger = unique_email()
    for email in (account.email, stranger):
        response = await client.post(OTP_REQUEST, json={"email": email})
        assert response.status == 202
        assert await response.read() == b""
    assert await mailed_code(database, account.email)
    assert await messages_to(database, stranger) == []


async def test_an_emailed_code_logs_in_once(client, database) -> None:
    account = await signup(client)
    await client.post(OTP_REQUEST, json={"email": account.email.upper()})
    code = await mailed_code(database, account.email)
    response = await client.post(OTP_VERIFY, json={"email": account.email, "code": code})
    assert response.status == 200
    tokens = await response.json()
    me = await client.get(ME, headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert (await me.json())["id"] == account.id
    again = await client.post(OTP_VERIFY, json={"email": account.email, "code": code})
    assert again.status == 401


async def test_verify_for_an_unknown_email_is_401_unauthorized(client) -> None:
    response = await client.post(OTP_VERIFY, json={"email": unique_email(), "code": "123456"})
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"


async def test_an_unknown_phone_gets_an_account_on_verify(client, database) -> None:
    assert (await client.post(OTP_REQUEST, json={"phone": "+49 151 1234-5678"})).status == 202
    code = await mailed_code(database, PHONE)
    before = await row_counts(database)
    response = await client.post(OTP_VERIFY, json={"phone": PHONE, "code": code})
    assert response.status == 200
    access = (await response.json())["access_token"]
    me = await (await client.get(ME, headers={"Authorization": f"Bearer {access}"})).json()
    assert me["email"] is None
    assert (await row_counts(database))["users"] == before["users"] + 1
    await client.post(OTP_REQUEST, json={"phone": PHONE})
    second = await mailed_code(database, PHONE, nth=2)
    again = await client.post(OTP_VERIFY, json={"phone": PHONE, "code": second})
    assert again.status == 200
    access = (await again.json())["access_token"]
    me_again = await (await client.get(ME, headers={"Authorization": f"Bearer {access}"})).json()
    assert me_again["id"] == me["id"], "the same phone logs into the same account"


async def test_a_code_allows_five_attempts_then_even_the_right_one_fails(client, database) -> None:
    account = await signup(client)
    await client.post(OTP_REQUEST, json={"email": account.email})
    code = await mailed_code(database, account.email)
    for _ in range(5):
        wrong = await client.post(
            OTP_VERIFY, json={"email": account.email, "code": other_code(code)}
        )
        assert wrong.status == 401
    right = await client.post(OTP_VERIFY, json={"email": account.email, "code": code})
    assert right.status == 401


async def test_an_expired_code_is_refused(client, database) -> None:
    account = await signup(client)
    await client.post(OTP_REQUEST, json={"email": account.email})
    code = await mailed_code(database, account.email)
    async with database.sessions.begin() as session:
        await session.execute(update(OtpCode).values(expires_at=OtpCode.created_at))
    response = await client.post(OTP_VERIFY, json={"email": account.email, "code": code})
    assert response.status == 401


async def test_a_new_code_replaces_the_previous_one_and_codes_are_stored_hashed(
    client, database
) -> None:
    account = await signup(client)
    await client.post(OTP_REQUEST, json={"email": account.email})
    first = await mailed_code(database, account.email)
    await client.post(OTP_REQUEST, json={"email": account.email})
    second = await mailed_code(database, account.email, nth=2)
    async with database.sessions() as session:
        hashes = (await session.execute(select(OtpCode.code_hash))).scalars().all()
    assert first not in "".join(hashes) and second not in "".join(hashes)
    if first != second:
        stale = await client.post(OTP_VERIFY, json={"email": account.email, "code": first})
        assert stale.status == 401
    fresh = await client.post(OTP_VERIFY, json={"email": account.email, "code": second})
    assert fresh.status == 200


async def test_otp_login_to_a_2fa_account_needs_the_second_factor_too(client, database) -> None:
    account = await signup(client)
    secret, _codes = await enable_2fa(client, account)
    await client.post(OTP_REQUEST, json={"email": account.email})
    code = await mailed_code(database, account.email)
    without = await client.post(OTP_VERIFY, json={"email": account.email, "code": code})
    assert without.status == 401
    assert (await without.json())["error"]["code"] == "totp_required"
    with_totp = await client.post(
        OTP_VERIFY, json={"email": account.email, "code": code, "totp": totp_at(secret)}
    )
    assert with_totp.status == 200


async def test_forgot_is_202_always_and_mails_only_existing_accounts(client, database) -> None:
    account = await signup(client)
    stranger = unique_email()
    for email in (account.email, stranger):
        assert (await client.post(FORGOT, json={"email": email})).status == 202
    assert await mailed_code(database, account.email)
    assert await messages_to(database, stranger) == []


async def test_reset_sets_the_new_password_and_revokes_every_session(client, database) -> None:
    account = await signup(client)
    revoked: list[str] = []
    client.app[REVOCATIONS].register(revoked.append)
    await client.post(FORGOT, json={"email": account.email})
    code = await mailed_code(database, account.email)
    new_password = "Brand-new-secret-42"
    response = await client.post(
        RESET, json={"email": account.email, "code": code, "new_password": new_password}
    )
    assert response.status == 204
    await eventually_equal(revoked, [account.id])
    assert revoked == [account.id]
    assert (await client.get(ME, headers=account.headers)).status == 401
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": account.refresh_token}
    )
    assert refreshed.status == 401
    old = await client.post(LOGIN, json={"email": account.email, "password": DEFAULT_PASSWORD})
    assert old.status == 401
    new = await client.post(LOGIN, json={"email": account.email, "password": new_password})
    assert new.status == 200
    replay = await client.post(
        RESET, json={"email": account.email, "code": code, "new_password": "Another-one-43"}
    )
    assert replay.status == 401


async def test_reset_with_a_wrong_code_or_a_weak_password_changes_nothing(client, database) -> None:
    account = await signup(client)
    await client.post(FORGOT, json={"email": account.email})
    code = await mailed_code(database, account.email)
    wrong = await client.post(
        RESET,
        json={"email": account.email, "code": other_code(code), "new_password": "Brand-new-42!"},
    )
    assert wrong.status == 401
    assert (await wrong.json())["error"]["code"] == "unauthorized"
    weak = await client.post(
        RESET, json={"email": account.email, "code": code, "new_password": "password123"}
    )
    assert weak.status == 400
    assert (await client.get(ME, headers=account.headers)).status == 200
    login = await client.post(LOGIN, json={"email": account.email, "password": DEFAULT_PASSWORD})
    assert login.status == 200


async def test_codes_per_destination_are_capped_silently(client, database) -> None:
    account = await signup(client)
    for _ in range(7):
        assert (await client.post(OTP_REQUEST, json={"email": account.email})).status == 202
    await mailed_code(database, account.email, nth=5)
    async with database.sessions() as session:
        issued = (await session.execute(select(func.count()).select_from(OtpCode))).scalar_one()
        users = (await session.execute(select(func.count()).select_from(User))).scalar_one()
    assert issued == 5
    assert users == 1
