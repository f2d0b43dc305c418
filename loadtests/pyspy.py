"""Optional sampling profile of the server under load with py-spy (`--profile DIR`).

py-spy samples the running server from outside (no code change, little overhead with
`--nonblocking`); the raw output is collapsed stacks, which `top_frames` condenses into
the functions that hold the most samples, by self time and by inclusive time.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path


def _binary() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Sampler:
    """`py-spy record` on one pid until `stop()`; writes collapsed stacks to `output`.

    The sampler runs on `cores` (the clients'), so it takes nothing from the server's.
    """

    def __init__(self, pid: int, output: Path, cores: set[int], rate: int = 200) -> None:
        self.output = output
        self._process: subprocess.Popen[bytes] | None = None
        binary = _binary()
        if binary is None:
            print("profile: py-spy not found (pip install py-spy); no profile taken")  # noqa: T201
            return
        self._process = subprocess.Popen(
            [
                binary,
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                str(output),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=lambda: os.sched_setaffinity(0, cores),  # off the server's core
        )

    def stop(self) -> bool:
        """Stop sampling and wait for the file; True when a profile was written."""
        if self._process is None:
            return False
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        return self.output.exists()


def _frames(stack: str) -> list[str]:
    return [frame.strip() for frame in stack.split(";") if frame.strip()]


def top_frames(collapsed: Path, count: int = 25) -> list[str]:
    """Report lines: the `count` busiest functions by self and by inclusive samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    with collapsed.open() as lines:
        for line in lines:
            stack, _, samples = line.rstrip().rpartition(" ")
            with contextlib.suppress(ValueError):
                n = int(samples)
                frames = _frames(stack)
                if not frames:
                    continue
                total += n
                own[frames[-1]] += n
                for frame in set(frames):
                    inclusive[frame] += n
    if not total:
        return ["profile: no samples"]
    report = [f"profile: {total} samples; self time:"]
    report += [f"  {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(count)]
    report.append("inclusive time:")
    report += [
        f"  {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(count * 2)
    ]
    return report
