"""`OfflineLLM`: the model used when no GEMINI_API_KEY is set.

It needs no network and always gives the same answer to the same prompt: a few
sentences that quote the last user message and reflect on it, streamed word by word at
a model-like pace so the whole path (deltas, cancel, join mid-answer) can be tried
locally. It calls itself `roomcast-offline` and says so in every answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncGenerator, Sequence

from actors.llm import Chunk, Finish, Prompt, Usage

_QUOTE_WORDS = 24
# "Ada: hello" - the Generation puts the speaker's name in front of user turns.
_SPEAKER = re.compile(r"^([^:\n]{1,40}):\s+(.+)$", re.DOTALL)
_WORD = re.compile(r"[^\W\d_][\w'-]*")
# Long words that say nothing about what a message is about.
_FILLER = frozenset(
    "about after again also because before could maybe please really should thank thanks "
    "that there these they this those what when where which while with would your".split()
)

_QUESTION = (
    "That is a question, and a good one to put to the room.",
    "You are asking something; people here may know more than an offline model does.",
    "A fair question - I can only turn it over, not answer it.",
)
_STATEMENT = (
    "That reads like a statement rather than a question.",
    "Noted: it sounds like you are thinking out loud.",
    "I take that as something to keep in mind for the rest of the conversation.",
)
_KEYWORD = (
    "The word that stands out to me is “{}”.",
    "If I had to pick one word from it, it would be “{}”.",
    "It seems to turn on “{}”.",
)
_CLOSING = (
    "I am the offline stand-in, so I reflect rather than reason; set GEMINI_API_KEY "
    "to talk to Gemini.",
    "This answer was made locally without a model provider; set GEMINI_API_KEY for real answers.",
    "No model provider is configured, so this is a local echo; set GEMINI_API_KEY to change that.",
)


class OfflineLLM:
    """A deterministic local stand-in for a model, labelled as such.

    Args:
        delay_s: pause before each word (0.03 s is about 30 words a second).
    """

    model = "roomcast-offline"

    def __init__(self, delay_s: float) -> None:
        self._delay = delay_s

    async def stream(self, prompt: Prompt) -> AsyncGenerator[Chunk, None]:
        """Stream the answer word by word; at most `max_output_tokens` words (then `length`)."""
        words = compose_answer(prompt).split(" ")
        limit = max(1, prompt.max_output_tokens)
        finish: Finish = "stop" if len(words) <= limit else "length"
        words = words[:limit]
        input_tokens = sum(len(turn.text.split()) for turn in prompt.turns)
        input_tokens += len(prompt.system.split()) if prompt.system else 0
        for i, word in enumerate(words):
            await asyncio.sleep(self._delay)
            if i < len(words) - 1:
                yield Chunk(word + " ")
            else:
                yield Chunk(word, finish, Usage(input_tokens, len(words)))

    async def warm_up(self) -> None:
        return None

    async def close(self) -> None:
        return None


def compose_answer(prompt: Prompt) -> str:
    """The whole answer to `prompt`: same prompt, same words."""
    last = next((t.text for t in reversed(prompt.turns) if t.role == "user"), "")
    speaker, said = _speaker(last.strip())
    digest = hashlib.sha256(repr(prompt).encode()).digest()
    address = f"{speaker}, you said" if speaker else "You said"
    quoted = _quote(said)
    stop = "" if quoted[-1:] in (".", "?", "!", "…") else "."
    sentences = [f"(offline model) {address}: “{quoted}”{stop}"]
    if said:
        sentences.append(_pick(_QUESTION if said.endswith("?") else _STATEMENT, digest[0]))
        keyword = _keyword(said)
        if keyword:
            sentences.append(_pick(_KEYWORD, digest[1]).format(keyword))
    earlier = len(prompt.turns) - 1
    if earlier > 0:
        plural = "message" if earlier == 1 else "messages"
        sentences.append(f"I can also see {earlier} earlier {plural} in this conversation.")
    sentences.append(_pick(_CLOSING, digest[2]))
    return " ".join(sentences)


def _speaker(text: str) -> tuple[str | None, str]:
    match = _SPEAKER.match(text)
    if match is None:
        return None, text
    return match.group(1).strip(), match.group(2).strip()


def _quote(text: str) -> str:
    words = text.split()
    if len(words) <= _QUOTE_WORDS:
        return " ".join(words)
    return " ".join(words[:_QUOTE_WORDS]) + "…"


def _keyword(text: str) -> str | None:
    """The longest word (the first of equals), if it is long enough to mean something."""
    words = [word for word in _WORD.findall(text) if word.lower() not in _FILLER]
    best = max(words, key=len, default="")
    return best if len(best) >= 4 else None


def _pick(options: Sequence[str], byte: int) -> str:
    return options[byte % len(options)]
