"""docs/protocol.md names everything a client can receive from the server.

The names are collected from the code, never listed here:

- event `type`s: string literals (or `StrEnum` members, `EventKind.AI_DELTA`) under a
  `"type"` key in the modules that build frames, and the string arguments of functions
  that put one of their parameters there;
- error `code`s: the `code` of every exception class of ours (the `RoomcastError` family,
  the model's `LLMError` family, whatever else carries one), found by walking the
  subclasses once every module is imported, plus the literal codes the frame modules
  pass to `error_frame` and friends or write into `ai.error` events;
- websocket close codes: the integers given to any `close*` call, written as literals, as
  members of an `IntEnum` (`CloseCode.SLOW_CONSUMER`) or as lookups in a table of them
  (`CLOSE_CODES[reason]`), and aiohttp's 1009 wherever a message size limit is set.

A name counts as documented when the page has it in backticks: `ai.delta`, `4509`.
"""

from __future__ import annotations

import ast
import functools
import importlib
import pkgutil
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "protocol.md"
PACKAGES = ("actors", "server", "storage")

# Modules that build `{"type": ...}` objects no client ever receives. Any other module
# that builds one must be a frame source (see
# `test_modules_building_typed_objects_are_frame_sources_or_known_not_to_be`).
NOT_FOR_CLIENTS = {
    "server/control.py": "events between server instances on the control stream",
    "server/billing/notices.py": "a plan change announced on the control stream",
    "server/openapi.py": "OpenAPI objects (a security scheme's type)",
}
# A `"type"` with one of these values is a JSON Schema, not an event.
JSON_SCHEMA_TYPES = frozenset({"array", "boolean", "integer", "null", "number", "object", "string"})

Function = ast.FunctionDef | ast.AsyncFunctionDef


def frame_sources() -> list[Path]:
    """Where frames for clients are built: the realtime core, the websocket modules, and
    the message records (a `message` event is also a history item)."""
    return [
        *sorted((ROOT / "actors").glob("*.py")),
        *sorted((ROOT / "server").glob("ws*.py")),
        ROOT / "storage" / "message_records.py",
    ]


def package_sources() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def parse(paths: Iterable[Path]) -> list[ast.Module]:
    """The modules' syntax trees, parsed on a thread of their own.

    CPython 3.11 can fail `ast.parse` with "AST constructor recursion depth mismatch" once
    its thread's recursion counter is off, as it was once late in a full test run; a new
    thread starts with a counter of its own.
    """

    def parse_all() -> list[ast.Module]:
        return [ast.parse(p.read_text(encoding="utf-8"), filename=str(p)) for p in paths]

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(parse_all).result()


# Collecting from source.


def _string(node: ast.AST | None) -> str | None:
    """A string literal's value, or the value of a `StrEnum` member of ours."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return str_enum_members().get((node.value.id, node.attr))
    return None


@functools.cache
def str_enum_members() -> dict[tuple[str, str], str]:
    """(class, member) → value of every `StrEnum` in the packages."""
    members: dict[tuple[str, str], str] = {}
    for tree in parse(package_sources()):
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and "StrEnum" in map(_last_name, node.bases):
                for item in node.body:
                    if isinstance(item, ast.Assign) and len(item.targets) == 1:
                        target, value = item.targets[0], item.value
                        if isinstance(target, ast.Name) and isinstance(value, ast.Constant):
                            members[node.name, target.id] = str(value.value)
    return members


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _params(function: Function) -> list[str]:
    """Positional parameter names, without a method's `self` or `cls`."""
    names = [arg.arg for arg in [*function.args.posonlyargs, *function.args.args]]
    if names and names[0] in ("self", "cls"):
        names = names[1:]
    return names + [arg.arg for arg in function.args.kwonlyargs]


def _functions(trees: Iterable[ast.Module]) -> Iterator[Function]:
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield node


def _values_under(node: ast.AST, key: str) -> Iterator[ast.expr]:
    """The value nodes of `key` in every dict literal within `node`."""
    for found in ast.walk(node):
        if isinstance(found, ast.Dict):
            for k, value in zip(found.keys, found.values, strict=True):
                if _string(k) == key:
                    yield value


def _spreads_kwargs(function: Function) -> bool:
    """Whether the function builds a dict from its `**kwargs` (`{"type": kind, **fields}`)."""
    kwarg = function.args.kwarg
    if kwarg is None:
        return False
    return any(
        k is None and isinstance(v, ast.Name) and v.id == kwarg.arg
        for found in ast.walk(function)
        if isinstance(found, ast.Dict)
        for k, v in zip(found.keys, found.values, strict=True)
    )


def _argument(call: ast.Call, slot: tuple[int, str]) -> ast.expr | None:
    index, name = slot
    if len(call.args) > index and not any(isinstance(a, ast.Starred) for a in call.args):
        return call.args[index]
    return next((kw.value for kw in call.keywords if kw.arg == name), None)


def _builders(functions: list[Function], key: str) -> dict[str, tuple[int, str]]:
    """Functions that put one of their parameters under `key`, directly or by passing it
    on to another such function: name → (position, parameter name)."""
    builders: dict[str, tuple[int, str]] = {}
    for function in functions:
        params = _params(function)
        for value in _values_under(function, key):
            if isinstance(value, ast.Name) and value.id in params:
                builders[function.name] = (params.index(value.id), value.id)
    changed = True
    while changed:
        changed = False
        for function in functions:
            if function.name in builders:
                continue
            params = _params(function)
            for call in (n for n in ast.walk(function) if isinstance(n, ast.Call)):
                slot = builders.get(_callee(call) or "")
                given = _argument(call, slot) if slot is not None else None
                if isinstance(given, ast.Name) and given.id in params:
                    builders[function.name] = (params.index(given.id), given.id)
                    changed = True
                    break
    return builders


def keyed_strings(trees: list[ast.Module], key: str) -> set[str]:
    """Every string literal the code can put under `key` in a dict it builds."""
    functions = list(_functions(trees))
    builders = _builders(functions, key)
    spreaders = {function.name for function in functions if _spreads_kwargs(function)}
    found = {s for tree in trees for v in _values_under(tree, key) if (s := _string(v))}
    for tree in trees:
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            callee = _callee(call) or ""
            if callee in builders and (s := _string(_argument(call, builders[callee]))):
                found.add(s)
            if callee in spreaders:
                given = (_string(kw.value) for kw in call.keywords if kw.arg == key)
                found.update(s for s in given if s)
    return found


@dataclass(frozen=True, slots=True)
class ModuleNames:
    """Module-level names a close code can be spelled with: the members of `IntEnum`
    classes, and dict literals (a table from reasons to codes)."""

    enums: dict[str, dict[str, ast.expr]]  # class name → member name → its value
    tables: dict[str, list[ast.expr]]  # name → the dict's values


def _last_name(node: ast.expr) -> str | None:
    """`Code` of `Code` or `module.Code`."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def module_names(trees: Iterable[ast.Module]) -> ModuleNames:
    names = ModuleNames({}, {})
    for tree in trees:
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and "IntEnum" in map(_last_name, node.bases):
                names.enums[node.name] = {
                    target.id: assign.value
                    for assign in node.body
                    if isinstance(assign, ast.Assign)
                    for target in assign.targets
                    if isinstance(target, ast.Name)
                }
            elif isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Dict):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if isinstance(target, ast.Name):
                        names.tables[target.id] = list(node.value.values)
    return names


def _close_code_values(
    node: ast.expr | None, function: Function | None, names: ModuleNames
) -> Iterator[int]:
    """Integers a close-code argument can take: literals, both arms of `a if c else b`,
    what a local name is assigned in the enclosing function, an `IntEnum` member's value,
    and every value of a module-level table it is looked up in."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        yield node.value
    elif isinstance(node, ast.IfExp):
        yield from _close_code_values(node.body, function, names)
        yield from _close_code_values(node.orelse, function, names)
    elif isinstance(node, ast.Name) and function is not None:
        for assign in (n for n in ast.walk(function) if isinstance(n, ast.Assign)):
            if any(isinstance(t, ast.Name) and t.id == node.id for t in assign.targets):
                yield from _close_code_values(assign.value, None, names)
    elif isinstance(node, ast.Attribute):
        member = names.enums.get(_last_name(node.value) or "", {}).get(node.attr)
        yield from _close_code_values(member, None, names)
    elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        for value in names.tables.get(node.value.id, []):
            yield from _close_code_values(value, None, names)


def close_codes(trees: list[ast.Module]) -> set[int]:
    """Websocket close codes the code can send (1000 to 4999, the range RFC 6455 defines)."""
    names = module_names(trees)
    scopes: list[tuple[ast.AST, Function | None]] = [(tree, None) for tree in trees]
    scopes += [(function, function) for function in _functions(trees)]
    codes: set[int] = set()
    for scope, function in scopes:
        for call in (n for n in ast.walk(scope) if isinstance(n, ast.Call)):
            if any(kw.arg == "max_msg_size" for kw in call.keywords):
                codes.add(int(aiohttp.WSCloseCode.MESSAGE_TOO_BIG))  # aiohttp closes for us
            if "close" not in (_callee(call) or "").lower():
                continue
            given = [*call.args[:1], *(kw.value for kw in call.keywords if kw.arg == "code")]
            for node in given:
                values = _close_code_values(node, function, names)
                codes.update(c for c in values if 1000 <= c <= 4999)
    return codes


# Collecting at run time.


def import_everything() -> None:
    importlib.import_module("errors")
    for name in PACKAGES:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            importlib.import_module(module.name)


def _subclasses(root: type) -> Iterator[type]:
    for subclass in root.__subclasses__():
        yield subclass
        yield from _subclasses(subclass)


def exception_codes() -> set[str]:
    """The `code` of every exception class of ours, once all our modules are imported."""
    import_everything()
    ours = ("errors", *PACKAGES)
    return {
        cls.code
        for cls in _subclasses(BaseException)
        if cls.__module__.split(".")[0] in ours and isinstance(getattr(cls, "code", None), str)
    }


# The check.


def undocumented(names: Iterable[object], doc: str) -> set[str]:
    """The names the doc does not mention in backticks."""
    return {str(name) for name in names if f"`{name}`" not in doc}


@functools.cache
def frame_types() -> frozenset[str]:
    return frozenset(keyed_strings(parse(frame_sources()), "type"))


@functools.cache
def error_codes() -> frozenset[str]:
    return frozenset(keyed_strings(parse(frame_sources()), "code") | exception_codes())


@functools.cache
def websocket_close_codes() -> frozenset[int]:
    return frozenset(close_codes(parse(package_sources())))


def test_the_collectors_find_a_healthy_number_of_each_kind() -> None:
    assert len(frame_types()) >= 12, frame_types()
    assert len(error_codes()) >= 14, error_codes()
    assert len(websocket_close_codes()) >= 8, websocket_close_codes()


def test_every_frame_type_the_code_can_send_is_documented() -> None:
    assert not undocumented(frame_types(), DOC.read_text(encoding="utf-8"))


def test_every_error_code_rest_or_websocket_is_documented() -> None:
    assert not undocumented(error_codes(), DOC.read_text(encoding="utf-8"))


def test_every_websocket_close_code_is_documented() -> None:
    assert not undocumented(websocket_close_codes(), DOC.read_text(encoding="utf-8"))


def test_modules_building_typed_objects_are_frame_sources_or_known_not_to_be() -> None:
    frames = set(frame_sources())
    builders = {
        path.relative_to(ROOT).as_posix()
        for path, tree in zip(package_sources(), parse(package_sources()), strict=True)
        if path not in frames
        and any(_string(v) not in (None, *JSON_SCHEMA_TYPES) for v in _values_under(tree, "type"))
    }
    assert builders <= set(NOT_FOR_CLIENTS), "a new module builds typed objects: for clients?"
    assert all((ROOT / path).is_file() for path in NOT_FOR_CLIENTS)


def test_the_check_reports_a_name_the_doc_leaves_out() -> None:
    doc = DOC.read_text(encoding="utf-8")
    for names in (frame_types(), error_codes(), websocket_close_codes()):
        left_out = sorted(str(name) for name in names)[0]
        assert undocumented(names, doc.replace(f"`{left_out}`", left_out)) == {left_out}
    assert undocumented(["ai.start", 4509], "only `4509` here") == {"ai.start"}


SAMPLE = """
def frame(kind, **fields):
    return {"type": kind, **fields}

def error(code, message):
    return {"type": "error", "code": code, "message": message}

def refuse(post, code):
    send(error(code, "no"))

class Room:
    def gone(self):
        self.put({"type": "left", "reason": "deleted"})
        self.put(frame("ai.start", code="interrupted"))
        refuse(None, "busy")
        error(code="quota", message="x")

async def shut(ws, binary):
    code = 1003 if binary else 4401
    await ws.close(code=code)
    conn.close_soon(4509, "slow")
    ws.close(status)
    WebSocketResponse(max_msg_size=10)

class Code(enum.IntEnum):
    AWAY = 4503
    BUSY = 4429
    NEVER_SENT = 4000

TABLE: dict[str, Code] = {"busy": Code.BUSY, "broken": 1011}

def close_for(conn, reason):
    conn.close_soon(TABLE[reason], reason)
    ws.close(code=Code.AWAY)
    ws.close(code=Code.MISSING)
"""


def test_the_collectors_follow_literals_builders_and_local_names() -> None:
    tree = [ast.parse(SAMPLE)]
    assert keyed_strings(tree, "type") == {"error", "left", "ai.start"}
    assert keyed_strings(tree, "code") == {"interrupted", "busy", "quota"}
    assert close_codes(tree) == {1003, 4401, 4509, 1009, 4503, 4429, 1011}
