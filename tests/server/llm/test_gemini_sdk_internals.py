"""The private google-genai names GeminiLLM relies on for speed, and that it stays right.

If one of these fails after an SDK upgrade, read `server/llm/gemini.py`'s module
docstring: the short cut must be adapted to the new SDK or dropped.
"""

from __future__ import annotations

from typing import Any, cast

from google.genai import _common as genai_common
from google.genai import models as genai_models
from google.genai import types
from google.genai._api_client import BaseApiClient

from actors.llm import Prompt, Turn
from server.llm import GeminiLLM
from server.llm import gemini as gemini_module
from server.llm.gemini import _config, _contents, _get_value_by_path
from tests.fakes.gemini import Send, blocked_prompt, event, safety_finish, usage


class _DeveloperApi:
    """What the SDK's converters ask of its API client here: which API it is."""

    vertexai = False


def _converted(prompt: Prompt) -> dict[str, Any]:
    request = types._GenerateContentParameters(
        model="models/gemini-test", contents=_contents(prompt), config=_config(prompt)
    )
    converted: dict[str, Any] = genai_models._GenerateContentParameters_to_mldev(
        cast(BaseApiClient, _DeveloperApi()), request, None, request
    )
    return converted


def test_the_sdk_converters_read_fields_through_the_function_the_short_cut_replaces() -> None:
    assert gemini_module._SDK_READER == "getv"
    assert genai_common.get_value_by_path is gemini_module._sdk_get_value_by_path
    assert getattr(genai_models, "getv", None) in (
        genai_common.get_value_by_path,
        _get_value_by_path,
    )


async def test_a_gemini_client_puts_the_short_cut_in_place() -> None:
    gemini = GeminiLLM("key", "gemini-test", base_url="http://127.0.0.1:9", request_timeout_s=5)
    try:
        await gemini.warm_up()
        assert getattr(genai_models, "getv", None) is _get_value_by_path
    finally:
        await gemini.close()


def test_the_short_cut_reads_what_the_sdk_reads_from_models_and_dicts() -> None:
    part = types.Part(text="hello", thought=False)
    content = types.Content(role="user", parts=[part])
    cases: list[tuple[Any, list[str]]] = [
        (part, ["text"]),
        (part, ["thought"]),
        (part, ["inline_data"]),  # a field left unset
        (part, ["no_such_field"]),
        (part, ["_self"]),
        (content, ["parts"]),
        (content, ["parts[]", "text"]),
        (content, ["parts[0]", "text"]),
        ({"text": "x"}, ["text"]),
        ({"text": None}, ["text"]),
        ({"text": ""}, ["text"]),
        ({}, ["text"]),
        ({"other": 1}, ["text"]),
        ({"a": {"b": 1}}, ["a", "b"]),
        ({"parts": [{"text": "x"}]}, ["parts[]", "text"]),
        ({"text": "x"}, ["_self"]),
        (None, ["text"]),
    ]
    for data, keys in cases:
        expected = genai_common.get_value_by_path(data, keys, default_value="absent")
        assert _get_value_by_path(data, keys, default_value="absent") == expected, keys


def test_a_request_converts_to_the_same_wire_body_with_the_short_cut(
    monkeypatch: Any,
) -> None:
    prompt = Prompt(
        system="You are the room's assistant.",
        turns=tuple(Turn("user" if i % 2 else "model", f"turn {i}") for i in range(7)),
        temperature=0.3,
        max_output_tokens=256,
    )
    monkeypatch.setattr(genai_models, "getv", genai_common.get_value_by_path)
    by_the_sdk = _converted(prompt)
    monkeypatch.setattr(genai_models, "getv", _get_value_by_path)

    assert _converted(prompt) == by_the_sdk
    assert by_the_sdk["contents"][1] == {"role": "user", "parts": [{"text": "turn 1"}]}


def test_streamed_chunks_convert_to_the_same_responses_with_the_short_cut(
    monkeypatch: Any,
) -> None:
    payloads = [
        event("Hello", finish="STOP", usage_metadata=usage(12, 1)).payload,
        *(step.payload for step in safety_finish("unsafe").steps if isinstance(step, Send)),
        *(step.payload for step in blocked_prompt().steps if isinstance(step, Send)),
    ]
    for payload in payloads:
        monkeypatch.setattr(genai_models, "getv", genai_common.get_value_by_path)
        by_the_sdk = genai_models._GenerateContentResponse_from_mldev(payload, None, None)
        monkeypatch.setattr(genai_models, "getv", _get_value_by_path)

        assert genai_models._GenerateContentResponse_from_mldev(payload, None, None) == by_the_sdk
