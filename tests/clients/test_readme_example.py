"""The README's client example runs as written against a real Roomcast."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from tests.instances import InstancesFactory

REPOSITORY = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    """The README's Python block that uses the client."""
    blocks = re.findall(r"```python\n(.*?)```", (REPOSITORY / "README.md").read_text(), re.S)
    [example] = [block for block in blocks if "roomcast_client" in block]
    return example


async def test_the_readme_example_says_hello_and_prints_the_streamed_answer(
    instances: InstancesFactory, tmp_path: Path
) -> None:
    [instance] = await instances(1, AI_PROVIDER="offline", AI_OFFLINE_DELAY="0.001")
    example = readme_example()
    assert 'URL = "http://127.0.0.1:8080"' in example  # what `make run` serves
    script = tmp_path / "hello.py"
    script.write_text(example.replace("http://127.0.0.1:8080", instance.url))
    env = os.environ | {"PYTHONPATH": str(REPOSITORY / "clients" / "python")}
    for _ in range(2):  # the second run meets an existing account, as a reader's would
        process = await asyncio.create_subprocess_exec(
            sys.executable, str(script), env=env, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0
        lines = out.decode().splitlines()
        assert lines[0] == "stored as 1"  # a new room each run
        assert "Hello! Who are you?" in lines[1]  # the offline model quotes the prompt
        assert lines[-1] == "[stop]"
