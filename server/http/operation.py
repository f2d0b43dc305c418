"""What a REST handler answers, declared on the handler, for the OpenAPI document.

```python
@answers(201, shapes.Room, errors=(403, 404))
async def create_room(request: web.Request) -> web.Response:
```

The document adds what it can tell by itself: 400 when there is a body or a query, 413
when there is a body, 401 unless `public`, and 500 everywhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel

F = TypeVar("F", bound=Callable[[web.Request], Awaitable[web.StreamResponse]])

_ATTRIBUTE = "roomcast_answer"


@dataclass(frozen=True, slots=True)
class Param:
    """A query or header parameter: its JSON Schema states the bounds its parser enforces."""

    name: str
    schema: dict[str, Any]
    description: str
    where: Literal["query", "header"] = "query"
    required: bool = False

    def to_openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": self.where,
            "required": self.required,
            "schema": self.schema,
            "description": self.description,
        }


@dataclass(frozen=True, slots=True)
class Answer:
    """An operation's success (status and body model, None for no body) and what else."""

    status: int
    model: type[BaseModel] | None
    errors: tuple[int, ...]
    params: tuple[Param, ...]
    public: bool
    body: type[BaseModel] | None
    body_required: bool | None


def answers(
    status: int,
    model: type[BaseModel] | None = None,
    *,
    errors: tuple[int, ...] = (),
    params: tuple[Param, ...] = (),
    public: bool = False,
    body: type[BaseModel] | None = None,
    body_required: bool | None = None,
) -> Callable[[F], F]:
    """Declare a handler's answer.

    Args:
        status: the success status.
        model: the success body, None for an empty one (204, 202).
        errors: the error statuses the handler (or what it calls) raises, beyond the
            ones the document derives (400, 401, 413, 500).
        params: the query (and header) parameters it reads.
        public: it takes no access token.
        body: the body it reads, when it does not pass a model to `parse_body` (found
            in its source) but reads the body another way.
        body_required: whether a body must be sent; by default, unless the handler
            calls `parse_optional_body`.
    """
    answer = Answer(status, model, tuple(sorted(errors)), params, public, body, body_required)

    def declare(handler: F) -> F:
        vars(handler)[_ATTRIBUTE] = answer
        return handler

    return declare


def answer_of(handler: Any) -> Answer | None:
    """The `Answer` declared on `handler` (or on a function it wraps), if any."""
    found = getattr(handler, _ATTRIBUTE, None)
    return found if isinstance(found, Answer) else None
