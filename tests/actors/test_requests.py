"""Client frames decoded into requests: every string that can reach storage is checked."""

from __future__ import annotations

import pytest

from actors.requests import Cancel, Join, Send, decode_frame, parse_request, request_id
from errors import Invalid

ROOM = "3f1c2a54-8d0e-4b7a-9c61-2e5f0a9b7d13"

# (frame, the field the error must name): a NUL in each string field of each frame type.
NUL_FIELDS = [
    ({"type": "auth", "token": "ey\x00J"}, "token"),
    ({"type": "join", "room": "a\x00b"}, "room"),
    ({"type": "leave", "room": "a\x00b"}, "room"),
    ({"type": "send", "room": "a\x00b", "body": "hi"}, "room"),
    ({"type": "send", "room": ROOM, "body": "h\x00i"}, "body"),
    ({"type": "send", "room": ROOM, "body": "hi", "client_id": "a\x00b"}, "client_id"),
    ({"type": "typing", "room": "\x00"}, "room"),
    ({"type": "cancel", "room": "a\x00b", "gen": "g"}, "room"),
    ({"type": "cancel", "room": ROOM, "gen": "g\x00"}, "gen"),
]


@pytest.mark.parametrize(("frame", "field"), NUL_FIELDS)
def test_a_nul_in_any_string_field_is_invalid_naming_the_field(frame, field) -> None:
    with pytest.raises(Invalid) as refused:
        parse_request(frame)
    assert refused.value.message == f"{field}: must not contain NUL characters"


@pytest.mark.parametrize(("frame", "field"), NUL_FIELDS)
def test_an_unpaired_surrogate_in_any_string_field_is_invalid(frame, field) -> None:
    lone = {name: value.replace("\x00", "\ud800") for name, value in frame.items()}
    with pytest.raises(Invalid) as refused:
        parse_request(lone)
    assert refused.value.message == f"{field}: must be valid Unicode (an unpaired surrogate)"


def test_paired_surrogates_and_other_control_characters_are_text_like_any_other() -> None:
    send = parse_request({"type": "send", "room": ROOM, "body": "😀\ttab\x01", "client_id": "é"})
    assert send == Send(ROOM, "😀\ttab\x01", "é")


@pytest.mark.parametrize("bad_id", ["a\x00b", "\udc00", "x" * 65, 2**53, True, 1.5, [1]])
def test_an_id_that_cannot_be_echoed_is_ignored(bad_id) -> None:
    assert request_id({"type": "ping", "id": bad_id}) is None


def test_well_formed_frames_still_decode() -> None:
    assert parse_request({"type": "join", "room": ROOM, "since": 3, "id": 1}) == Join(ROOM, 3, 1)
    assert parse_request({"type": "cancel", "room": ROOM, "gen": "g"}) == Cancel(ROOM, "g")


def test_json_with_an_escaped_lone_surrogate_decodes_so_it_can_be_refused_by_field() -> None:
    # orjson refuses it; a browser's JSON.stringify writes it for a string cut inside an
    # emoji, which deserves an `invalid` answer, not a closed connection.
    data = decode_frame('{"type": "send", "room": "r", "body": "cut \\ud83d", "id": "s"}')
    assert data == {"type": "send", "room": "r", "body": "cut \ud83d", "id": "s"}


NOT_JSON = ["{", "NaN", '{"type": "ping", "x": NaN}', "[" * 5000 + "]" * 5000]


@pytest.mark.parametrize("text", NOT_JSON, ids=["unclosed", "NaN", "NaN inside", "too deep"])
def test_what_is_not_json_still_fails_to_decode(text) -> None:
    with pytest.raises(ValueError, match="frame is not JSON"):
        decode_frame(text)


@pytest.mark.parametrize("text", NOT_JSON, ids=["unclosed", "NaN", "NaN inside", "too deep"])
def test_an_escaped_lone_surrogate_does_not_make_the_rest_json(text) -> None:
    with pytest.raises(ValueError, match="frame is not JSON"):
        decode_frame(f'["\\ud800", {text}]')
