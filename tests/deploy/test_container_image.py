"""The container image: its build context carries no secrets, and it installs from the lock.

There is no container engine on the test machines, so the build context is computed the
way `docker build` computes it: every file of the checkout minus what `.dockerignore`
excludes (its patterns read with gitignore rules, which agree with Docker's for the
patterns used there). A development checkout with a venv, a database and a secret key is
made in a temporary folder, so the test does not depend on what this checkout holds.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pathspec

REPO = Path(__file__).resolve().parents[2]
SECRETS = (
    ".venv/bin/python",
    ".venv/lib/python3.11/site-packages/x.py",
    "var/secret_key",
    "var/roomcast.db",
    "var/roomcast.db-wal",
    ".git/config",
    "server/__pycache__/app.cpython-311.pyc",
)


def _context(root: Path) -> set[str]:
    ignore = pathspec.GitIgnoreSpec.from_lines((root / ".dockerignore").read_text().splitlines())
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    return {f for f in files if not ignore.match_file(f)}


def test_the_build_context_leaves_out_the_venv_the_database_and_the_secret_key(
    tmp_path: Path,
) -> None:
    for name in (".dockerignore", "Dockerfile", "run.py", "requirements.lock"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "server").mkdir()
    shutil.copy(REPO / "server" / "app.py", tmp_path / "server" / "app.py")
    for secret in SECRETS:
        (tmp_path / secret).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / secret).write_text("x")

    context = _context(tmp_path)

    assert context == {
        ".dockerignore",
        "Dockerfile",
        "run.py",
        "requirements.lock",
        "server/app.py",
    }


def test_the_image_installs_the_locked_pip_then_the_lock_without_resolving() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    installs = re.findall(r"pip install ([^\n\\&]+)", dockerfile)
    assert installs, dockerfile
    for install in installs:
        assert "--no-deps" in install and "--require-hashes" in install, install
    assert [re.search(r"-r (\S+)", i).group(1) for i in installs] == [  # type: ignore[union-attr]
        "requirements-pip.lock",
        "requirements.lock",
    ]
    assert "pip check" in dockerfile
