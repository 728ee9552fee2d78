"""The command line as a user meets it: fast help, exact byte accounting, one-line errors, no debris."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from gsc.testing.fuzz import sample_stream

# Every test here runs gsc in a subprocess (the CLI as users run it): slow.
pytestmark = pytest.mark.slow


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
    assert d["header_bytes"] <= 11 and d["channels"] == 1 and d["preset"] == "lite"


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
    bad.write_bytes(b"\xb3\x00\x00garbage")
    one_line_error(gsc("info", bad), "checksum")
    one_line_error(gsc("decode", bad, "-o", tmp_path / "x.png"), "checksum")
    assert not (tmp_path / "x.png").exists()
    one_line_error(gsc("info", tmp_path / "none.gsc"), "no such file")
    img = tmp_path / "ok.png"
    Image.new("RGB", (64, 48), (10, 200, 30)).save(img)
    one_line_error(gsc("encode", img, "-o", tmp_path / "o.gsc", "--preset", "jpeg"), "unknown preset 'jpeg'")
    one_line_error(gsc("encode", img, "-o", tmp_path / "o.gsc", "--channels", "99"), "--channels must be 0..64")
    one_line_error(gsc("encode", img, "-o", tmp_path / "o.gsc", "--selection", "best"), "unknown selection 'best'")
    assert not (tmp_path / "o.gsc").exists()


def test_usage_errors_exit_non_zero_without_traceback(tmp_path):
    out = gsc("encode")
    assert out.returncode == 2 and "Traceback" not in out.stderr and "Missing argument" in out.stderr
    out = gsc("encode", tmp_path / "x.png", "-o", tmp_path / "y.gsc", "--channels", "two")
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_hostile_streams_are_refused_in_one_line(tmp_path):
    """The hostile streams: tiny valid streams that ask for minutes to days of decoding."""
    from gsc.testing.fuzz import hostile_streams

    for k, (name, data) in enumerate(hostile_streams().items()):
        stream, out = tmp_path / f"h{k}.gsc", tmp_path / f"h{k}.png"
        stream.write_bytes(data)
        pattern = "sampling steps" if "768×512" in name else "Mpx"
        one_line_error(gsc("decode", stream, "-o", out), pattern)
        assert not out.exists()
        if "m = 4095" in name:
            one_line_error(gsc("info", stream), "entropy-decoding work")
    assert not [p for p in tmp_path.iterdir() if p.suffix != ".gsc"]


def png_claiming(path, width, height):
    """A PNG whose header claims width × height, with a tiny (wrong) pixel payload behind it."""
    import binascii
    import struct

    Image.new("RGB", (16, 16)).save(path)
    raw = bytearray(path.read_bytes())
    assert raw[12:16] == b"IHDR"
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", binascii.crc32(bytes(raw[12:29])))
    path.write_bytes(bytes(raw))


def snapshot(path):
    return path.read_bytes(), path.stat().st_mtime_ns


def test_careless_user_paths_give_one_line_and_leave_the_input_untouched(tmp_path):
    img = tmp_path / "same.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(img)
    stream = tmp_path / "s.gsc"
    stream.write_bytes(sample_stream("A caption.", channels=1, size=(64, 48)))
    folder = tmp_path / "folder"
    folder.mkdir()
    before = {p: snapshot(p) for p in (img, stream)}
    # Output = input, and an output that is a folder: refused before any work.
    one_line_error(gsc("encode", img, "-o", img), "is the input")
    one_line_error(gsc("decode", stream, "-o", stream), "is the input")
    one_line_error(gsc("encode", img, "-o", folder), "is a folder")
    one_line_error(gsc("decode", stream, "-o", folder), "is a folder")
    assert list(folder.iterdir()) == []
    # Images too large for the format: refused from the header, before any pixel is decoded.
    for w, h in [(20000, 10000), (12000, 9000)]:
        big = tmp_path / f"big{w}.png"
        png_claiming(big, w, h)
        one_line_error(gsc("encode", big, "-o", tmp_path / "big.gsc"), "limit is 16384 px a side and 67.1 Mpx")
    # Not a regular file: a device is never read.
    one_line_error(gsc("info", "/dev/zero"), "not a regular file")
    one_line_error(gsc("encode", "/dev/zero", "-o", tmp_path / "z.gsc"), "not a regular file")
    huge = tmp_path / "huge.gsc"
    huge.write_bytes(b"\xb3" * ((1 << 20) + 1))
    one_line_error(gsc("info", huge), "larger than any gsc stream")
    # A float image outside any range gsc can read, and an animated image.
    import numpy as np

    Image.fromarray(np.linspace(-3, 1000.5, 64 * 48, dtype=np.float32).reshape(48, 64), "F").save(tmp_path / "f.tif")
    one_line_error(gsc("encode", tmp_path / "f.tif", "-o", tmp_path / "f.gsc"), "samples in [-3, 1000.5]")
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    one_line_error(gsc("encode", tmp_path / "a.gif", "-o", tmp_path / "a.gsc"), "animated (2 frames)")
    assert {p: snapshot(p) for p in (img, stream)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["same.png", "s.gsc", "folder", "big20000.png", "big12000.png", "huge.gsc", "f.tif", "a.gif"])


def test_encode_notes_a_stream_that_default_receivers_refuse(tmp_path):
    img = tmp_path / "a.png"
    Image.new("RGB", (64, 48), (10, 200, 30)).save(img)
    out = gsc("encode", img, "-o", tmp_path / "a.gsc", "--channels", "0", "--steps", "100", "--seed", "0")
    assert out.returncode == 0 and (tmp_path / "a.gsc").exists()
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "default limits refuses" in lines[0] and "100 sampling steps" in lines[0]
