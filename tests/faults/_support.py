"""What the fault tests share: the CLI as a user calls it, the one-error-line check, and a
fingerprint of a folder (what "nothing changed" compares)."""

import hashlib
from pathlib import Path

from learnlab.cli import main


def cli(capsys, *args) -> tuple[int, str, str]:
    """Run ``learnlab ARGS``; returns (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_error(code: int, err: str, *fragments: str) -> None:
    """Exit 2 and exactly one ``learnlab: error:`` line containing every fragment."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("learnlab: error: "), err
    assert all(fragment in lines[0] for fragment in fragments), lines[0]


def file_hashes(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its SHA-256."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}
