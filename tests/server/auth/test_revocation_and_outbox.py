"""The revocation hook for the websocket layer, and mail over SMTP when SMTP_URL is set."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections.abc import AsyncIterator

import pytest

from server.auth.revocation import Revocations
from server.outbox import SmtpOutbox, SmtpServer
from server.state import OUTBOX
from tests.accounts import signup
from tests.server.auth.conftest import row_counts


async def test_revocations_call_sync_and_async_callbacks_and_survive_a_broken_one(
    caplog,
) -> None:
    revocations = Revocations()
    heard: list[str] = []

    async def closes_sessions(user_id: str) -> None:
        heard.append(f"async {user_id}")

    def broken(_user_id: str) -> None:
        raise RuntimeError("listener bug")

    revocations.register(heard.append)
    revocations.register(broken)
    unregister = revocations.register(closes_sessions)
    await revocations.user_revoked("u1")
    assert heard == ["u1", "async u1"]
    assert any("revocation callback failed" in r.message for r in caplog.records)
    unregister()
    await revocations.user_revoked("u2")
    assert heard == ["u1", "async u1", "u2"]


async def test_a_revoked_sign_in_reaches_sign_in_callbacks_only() -> None:
    revocations = Revocations()
    users: list[str] = []
    sign_ins: list[tuple[str, str]] = []
    revocations.register(users.append)
    unregister = revocations.register_sign_in(lambda user, family: sign_ins.append((user, family)))
    await revocations.sign_in_revoked("u1", "f1")
    await revocations.user_revoked("u2")
    assert sign_ins == [("u1", "f1")]
    assert users == ["u2"]
    unregister()
    await revocations.sign_in_revoked("u1", "f2")
    assert sign_ins == [("u1", "f1")]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpServer("mail.example.com", 587, None, None, False)),
        (
            "smtps://u%40x:p%2Fw@mail.example.com",
            SmtpServer("mail.example.com", 465, "u@x", "p/w", True),
        ),
        ("smtp://u:p@127.0.0.1:2525", SmtpServer("127.0.0.1", 2525, "u", "p", False)),
    ],
)
def test_smtp_url_names_host_port_credentials_and_tls(url, expected) -> None:
    assert SmtpServer.from_url(url) == expected


@pytest.mark.parametrize("url", ["http://mail.example.com", "smtp://", "mail.example.com"])
def test_a_malformed_smtp_url_is_refused(url) -> None:
    with pytest.raises(ValueError, match="SMTP_URL"):
        SmtpServer.from_url(url)


class FakeSmtp:
    """Just enough of an SMTP server to receive messages (no TLS, no AUTH)."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.received = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 fake ESMTP\r\n")
        while line := await reader.readline():
            verb = line.split(b" ", 1)[0].strip().upper()
            if verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                data = await reader.readuntil(b"\r\n.\r\n")
                parsed = email.message_from_bytes(data[:-5], policy=email.policy.default)
                self.messages.append(parsed)  # type: ignore[arg-type]
                self.received.set()
                writer.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()


@pytest.fixture
async def fake_smtp() -> AsyncIterator[tuple[FakeSmtp, int]]:
    fake = FakeSmtp()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield fake, port
    server.close()
    await server.wait_closed()


async def test_with_smtp_url_set_reset_codes_are_mailed_over_smtp(
    make_client, database, fake_smtp
) -> None:
    fake, port = fake_smtp
    client = await make_client(smtp_url=f"smtp://127.0.0.1:{port}", mail_from="rc@example.com")
    assert isinstance(client.app[OUTBOX], SmtpOutbox)
    account = await signup(client)
    before = await row_counts(database)
    assert (
        await client.post("/api/v1/auth/password/forgot", json={"email": account.email})
    ).status == 202
    async with asyncio.timeout(5):
        await fake.received.wait()
    message = fake.messages[0]
    assert message["To"] == account.email
    assert message["From"] == "rc@example.com"
    assert "reset code is" in message.get_content()
    assert (await row_counts(database))["outbox"] == before["outbox"], "not kept in dev outbox"
