"""Proves the locks complete and in step with pyproject.toml; `make test` runs it after installing.

The Makefile installs a lock with `pip install --no-deps`, so nothing is resolved against
the index and nothing checks on its own that a lock holds every dependency. This does:
1. each dependency pyproject.toml declares is pinned, at a version its specifier allows,
   in requirements.lock (runtime) and in requirements-dev.lock (runtime and dev);
2. the two locks pin each package they share at the same version;
3. walking the installed metadata from pyproject.toml's requirements, extras and
   environment markers included, every dependency reached is pinned in the lock that
   should hold it, installed at that version, and allowed by whoever requires it.
It prints one line per problem and exits 1 if there is any; run `make lock` to fix them.
`--root DIR` reads pyproject.toml and the locks from DIR instead of the repository.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*([^\\]+?))?\s*\\?$")


@dataclass(frozen=True, slots=True)
class Lock:
    """The pins of one lock file whose markers hold on this machine."""

    path: Path
    pins: dict[NormalizedName, Version]

    @classmethod
    def read(cls, path: Path) -> Lock:
        pins: dict[NormalizedName, Version] = {}
        for line in path.read_text().splitlines():
            match = _PIN.match(line)
            if match is None:
                continue
            package, version, marker = match.groups()
            if marker is None or Marker(marker).evaluate():
                pins[canonicalize_name(package)] = Version(version)
        return cls(path, pins)


def _applies(requirement: Requirement, extras: frozenset[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in {"", *extras})


def _declared(requirement: Requirement, lock: Lock) -> list[str]:
    name = canonicalize_name(requirement.name)
    pinned = lock.pins.get(name)
    if pinned is None:
        return [f"{lock.path.name}: {requirement} is declared in pyproject.toml but not locked"]
    if not requirement.specifier.contains(pinned, prereleases=True):
        return [f"{lock.path.name}: {name}=={pinned} does not satisfy pyproject's {requirement}"]
    return []


def _closure(roots: list[Requirement], lock: Lock) -> list[str]:
    """Walk the installed dependency graph from `roots`, checking each edge against `lock`."""
    problems: list[str] = []
    seen: set[tuple[NormalizedName, frozenset[str]]] = set()
    todo = [(req, "pyproject.toml") for req in roots]
    while todo:
        requirement, wanted_by = todo.pop()
        name = canonicalize_name(requirement.name)
        try:
            installed = Version(metadata.version(name))
        except metadata.PackageNotFoundError:
            problems.append(f"{name}, required by {wanted_by}, is not installed")
            continue
        if name not in lock.pins:
            problems.append(f"{lock.path.name}: {name}, required by {wanted_by}, is not locked")
        elif installed != lock.pins[name]:
            problems.append(
                f"{name} {installed} is installed, {lock.path.name} pins {lock.pins[name]}"
            )
        if not requirement.specifier.contains(installed, prereleases=True):
            problems.append(f"{wanted_by} requires {requirement}, {lock.path.name} has {installed}")
        extras = frozenset(requirement.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for raw in metadata.requires(name) or []:
            dependency = Requirement(raw)
            if _applies(dependency, extras):
                todo.append((dependency, f"{name} {installed}"))
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT)
    root = parser.parse_args().root
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    runtime = [Requirement(raw) for raw in project["dependencies"]]
    dev = runtime + [Requirement(raw) for raw in project["optional-dependencies"]["dev"]]
    runtime_lock, dev_lock = (
        Lock.read(root / "requirements.lock"),
        Lock.read(root / "requirements-dev.lock"),
    )

    problems = [p for req in runtime for p in _declared(req, runtime_lock)]
    problems += [p for req in dev for p in _declared(req, dev_lock)]
    problems += [
        f"{name} is pinned at {version} in requirements.lock, {dev_lock.pins[name]} in the dev lock"
        for name, version in runtime_lock.pins.items()
        if dev_lock.pins.get(name, version) != version
    ]
    problems += _closure(runtime, runtime_lock) + _closure(dev, dev_lock)
    for problem in dict.fromkeys(problems):
        print(f"lock: {problem}", file=sys.stderr)
    if problems:
        print("lock: the locks disagree with pyproject.toml; run `make lock`", file=sys.stderr)
        return 1
    print(f"lock: {len(runtime_lock.pins)} runtime and {len(dev_lock.pins)} dev pins, complete")
    return 0


if __name__ == "__main__":
    sys.exit(main())
