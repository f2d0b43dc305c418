"""Serve Roomcast with a stack sampler, switched on and off by signals (storm --profile).

    python -m loadtests.storm_profile OUT.txt run.py serve

Used when py-spy is not installed. Runs `run.py serve` in this process unchanged.
SIGUSR1 starts a CPU-time interval timer (ITIMER_PROF): every millisecond of CPU the
process uses (in practice every kernel tick, 4 ms at HZ=250), SIGPROF's handler (which
Python runs on the main thread, the event loop's, at the next bytecode) records the
Python stack; SIGUSR2 stops it and writes the stacks in py-spy's collapsed format to
OUT.txt, which loadtests/pyspy.py's `top_frames` reads.
Sampling by CPU time means waiting is never sampled, so the percentages are of the
server's CPU. CPU spent in C with no Python frame above the loop (libuv, the kernel's
side of its reads and writes) shows as the loop's entry frames (LOOP).

Inside SQLAlchemy's greenlets the stack is joined to the parent greenlet's, so database
work is counted under the repository function that awaited it. cProfile would not do:
greenlet switches and suspended coroutines corrupt its inclusive times; a sampling
thread would see the stack only where the main thread releases the GIL, which
overweights calls like `os.urandom`.
"""

from __future__ import annotations

import contextlib
import runpy
import signal
import sys
from collections import Counter
from pathlib import Path
from types import CodeType, FrameType

INTERVAL = 0.001  # seconds of CPU between samples
ENTRY_FILES = (
    "runpy.py",
    "<frozen runpy>",
    "storm_profile.py",
    "run.py",
    "aiohttp/web.py",
    "asyncio/runners.py",
)
LOOP = "<the event loop in C: libuv, socket reads and writes>"


def _short(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1]
    if "/lib/python3" in filename:
        return filename.split("/lib/", 1)[1]
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return filename.removeprefix(root)


def _codes(frame: FrameType | None) -> list[CodeType]:
    """The code objects of `frame` and its callers, innermost first."""
    codes = []
    while frame is not None:
        codes.append(frame.f_code)
        frame = frame.f_back
    return codes


def _parent_codes() -> list[CodeType]:
    """Inside a greenlet (SQLAlchemy's async bridge), the stacks of the greenlets above it.

    A greenlet's frames end at its own entry; the code that awaited the database call
    (the repository, the handler) waits in the parent greenlet, in `greenlet_spawn`.
    """
    codes: list[CodeType] = []
    with contextlib.suppress(ImportError):
        import greenlet

        parent = greenlet.getcurrent().parent
        while parent is not None:
            codes += _codes(parent.gr_frame)
            parent = parent.parent
    return codes


class StackSampler:
    """Counts the main thread's stacks at each SIGPROF, as collapsed stacks."""

    def __init__(self) -> None:
        self._labels: dict[CodeType, str] = {}
        self.stacks: Counter[str] = Counter()

    def start(self) -> None:
        signal.signal(signal.SIGPROF, self._sample)
        signal.setitimer(signal.ITIMER_PROF, INTERVAL, INTERVAL)

    def stop(self) -> None:
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, signal.SIG_IGN)

    def _label(self, code: CodeType) -> str:
        label = self._labels.get(code)
        if label is None:
            label = f"{code.co_name} ({_short(code.co_filename)}:{code.co_firstlineno})"
            self._labels[code] = label
        return label

    def _sample(self, _signum: int, frame: FrameType | None) -> None:
        codes = _codes(frame)
        if codes and not codes[-1].co_filename.endswith(ENTRY_FILES):
            codes += _parent_codes()
        if all(code.co_filename.endswith(ENTRY_FILES) for code in codes):
            self.stacks[LOOP] += 1
            return
        self.stacks[";".join(self._label(code) for code in reversed(codes))] += 1

    def write(self, output: Path) -> None:
        partial = output.with_name(output.name + ".part")
        with partial.open("w") as out:
            for stack, count in self.stacks.items():
                out.write(f"{stack} {count}\n")
        partial.replace(output)  # the parent waits for OUT: it appears whole


def main() -> None:
    output, script, *rest = sys.argv[1:]
    samplers: list[StackSampler] = []

    def start(_signum: int, _frame: FrameType | None) -> None:
        samplers.append(StackSampler())
        samplers[-1].start()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        if samplers:
            sampler = samplers.pop()
            sampler.stop()
            sampler.write(Path(output))

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.argv = [script, *rest]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
