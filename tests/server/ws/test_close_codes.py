"""Actors state why a connection ends; the websocket layer's one table picks the code."""

from __future__ import annotations

from actors.close_reason import CloseReason
from server.ws import CLOSE_CODES


def test_every_close_reason_an_actor_can_give_has_a_close_code() -> None:
    assert set(CLOSE_CODES) == set(CloseReason)


def test_each_reason_closes_with_the_code_and_text_clients_know() -> None:
    seen = {(int(CLOSE_CODES[reason]), str(reason)) for reason in CloseReason}
    assert seen == {
        (4401, "tokens revoked"),
        (4401, "sign-in revoked"),
        (4401, "token expired"),
        (4401, "invalid token"),
        (1011, "room access changed"),
        (4509, "slow consumer"),
        (4503, "server shutting down"),
    }
