"""The command line as a user meets it: fast help, exact byte accounting, one-line errors, no debris."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from gsc.fuzz import sample_stream


def gsc(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "gsc", *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_help_and_info_do_not_import_torch(tmp_path):
    stream = tmp_path / "a.gsc"
    stream.write_bytes(sample_stream("A caption.", channels=2))
    probe = ("import sys; from gsc.cli import main; rc = main({args}); "
             "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH'); sys.exit(rc)")
    for args in (["--help"], ["info", str(stream), "--json"]):
        out = subprocess.run([sys.executable, "-c", probe.format(args=args)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().endswith("NO-TORCH")


def test_info_json_counts_the_whole_file(tmp_path):
    stream = tmp_path / "a.gsc"
    data = sample_stream("Two macaw parrots side by side against a blurred green background.", channels=1)
    stream.write_bytes(data)
    out = gsc("info", stream, "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert d["total_bytes"] == stream.stat().st_size == len(data)
    assert d["bpp"] == pytest.approx(len(data) * 8 / (768 * 512))
    assert d["header_bytes"] + d["caption_bytes"] + d["latent_bytes"] == d["total_bytes"]
    assert d["header_bytes"] <= 6 and d["channels"] == 1 and d["preset"] == "lite"


def one_line_error(out, pattern):
    assert out.returncode != 0
    assert "Traceback" not in out.stderr
    lines = [l for l in out.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, out.stderr
    assert pattern in lines[0], lines[0]


def test_bad_inputs_give_one_line_and_leave_nothing(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    Image.new("RGB", (12, 40)).save(tmp_path / "small.png")
    cases = [("missing.png", "no such file"), ("notes.txt", "not a readable image"), ("small.png", "at least 16×16")]
    for name, pattern in cases:
        out = gsc("encode", tmp_path / name, "-o", tmp_path / "out.gsc")
        one_line_error(out, pattern)
    assert not (tmp_path / "out.gsc").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no temporary debris


def test_bad_streams_and_options_give_one_line(tmp_path):
    bad = tmp_path / "bad.gsc"
    bad.write_bytes(b"\xb2\x00\x00garbage")
    one_line_error(gsc("info", bad), "checksum")
    one_line_error(gsc("decode", bad, "-o", tmp_path / "x.png"), "checksum")
    assert not (tmp_path / "x.png").exists()
    one_line_error(gsc("info", tmp_path / "none.gsc"), "no such file")
    img = tmp_path / "ok.png"
    Image.new("RGB", (64, 48), (10, 200, 30)).save(img)
    one_line_error(gsc("encode", img, "-o", tmp_path / "o.gsc", "--preset", "jpeg"), "unknown preset 'jpeg'")
    one_line_error(gsc("encode", img, "-o", tmp_path / "o.gsc", "--channels", "40"), "--channels must be 0..16")
    one_line_error(gsc("encode", img, "-o", tmp_path / "o.gsc", "--selection", "best"), "unknown selection 'best'")
    assert not (tmp_path / "o.gsc").exists()


def test_usage_errors_exit_non_zero_without_traceback(tmp_path):
    out = gsc("encode")
    assert out.returncode == 2 and "Traceback" not in out.stderr and "Missing argument" in out.stderr
    out = gsc("encode", tmp_path / "x.png", "-o", tmp_path / "y.gsc", "--channels", "two")
    assert out.returncode == 2 and "Traceback" not in out.stderr
