"""The README's Python block runs as written, from a checkout beside ../shared (a fresh copy of that layout)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.slow
@pytest.mark.shared_data("kodak")
def test_readme_python_block_runs_and_saves_the_image(tmp_path, shared_data):
    (block,) = python_blocks((ROOT / "README.md").read_text())
    checkout = tmp_path / "checkout"      # ../shared/data/... from here is tmp_path/shared/data/...
    checkout.mkdir()
    (tmp_path / "shared").symlink_to(shared_data.parent, target_is_directory=True)
    out = subprocess.run([sys.executable, "-c", block], cwd=checkout, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    from PIL import Image

    with Image.open(checkout / "kodim23_gsc.png") as im:
        assert im.size == (768, 512)
    stream = (checkout / "kodim23.gsc").read_bytes()
    assert 0 < len(stream) * 8 / (768 * 512) <= 0.01
