"""Tiles (``gsc.format.tiles``): images above 1 Mpx in independently decodable tiles of stream v4.

The format: the grid from the size alone, a record per tile per layer, damage and cuts kept to their tile,
a lost length found again. The codec, with ``lite-tiny`` and ``flux-tiny``: a 1280×832 image in two tiles,
one tile's layer damaged changes no pixel farther than 64 px from that tile (exactly), a cut decodes,
``info`` lists the tiles; flux's tiles each select their channels alone, layers adding the next ones; and
images up to 1 Mpx give the bytes they gave before tiles existed.
"""

import hashlib
import json
import random

import pytest
import torch

from gsc.codec import Codec
from gsc.errors import GSCError
from gsc.format import layered, tiles
from gsc.format.container import MAX_PIXELS, MAX_SIDE, Header

from test_lite_tiny import smooth_image

pytestmark = pytest.mark.usefixtures("one_thread")
REACH = 64      # px: the most a tile's bytes may move pixels outside it


def test_the_grid_is_one_tile_up_to_1_mpx_and_tiles_of_at_most_about_1_mpx_above():
    assert len(tiles.grid(768, 512)) == len(tiles.grid(1024, 1024)) == 1
    assert tiles.grid(1024, 1024)[0].coded == (0, 0, 1024, 1024)
    assert len(tiles.grid(1280, 832)) == len(tiles.grid(1920, 1080)) == 2
    assert len(tiles.grid(2048, 2048)) == 4
    for size in [(1025, 1024), (1920, 1080), (3000, 2000), (4000, 300), (MAX_SIDE, MAX_PIXELS // MAX_SIDE),
                 (8192, 8192), (10000, 6710), (MAX_SIDE, 65)]:
        grid = tiles.grid(*size)
        assert 1 < len(grid) <= tiles.MAX_TILES, size
        cover = torch.zeros(size[1], size[0], dtype=torch.int32)
        for t in grid:
            x0, y0, x1, y1 = t.box
            cover[y0:y1, x0:x1] += 1
            assert (x1 - x0) * (y1 - y0) <= 1.1 * tiles.MAX_TILE_PIXELS
            assert all(0 <= a - b <= tiles.OVERLAP for a, b in zip(t.box[:2], t.coded[:2]))
            assert all(0 <= b - a <= tiles.OVERLAP for a, b in zip(t.box[2:], t.coded[2:]))
        assert bool((cover == 1).all()), size    # the nominal boxes partition the image


@pytest.mark.parametrize("size", [(1280, 832), (2048, 2048), (3000, 2000)])
def test_blend_weights_sum_to_one_and_stop_at_the_coded_box(size):
    from gsc.generate.tiled import weights

    total = torch.zeros(size[1], size[0])
    for t in tiles.grid(*size):
        w = weights(t, *size)[0]
        x0, y0, x1, y1 = t.coded
        assert w.shape == (y1 - y0, x1 - x0) and float(w.min()) > 0
        total[y0:y1, x0:x1] += w
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)


def _stream(layers=3, size=(1920, 1080), seed=0, caption=b"caption bytes"):
    rng = random.Random(seed)
    n = len(tiles.grid(*size))
    sections = [[rng.randbytes(rng.randint(40, 300)) for _ in range(n)] for _ in range(layers)]
    return layered.pack_tiles(Header(3, *size), caption, sections), sections


def test_records_round_trip_and_damage_stays_in_its_tile():
    data, sections = _stream()
    s = layered.read(data)
    assert s.report.intact and s.layers == [] and s.report.decoded == 3
    assert s.tiles == tuple(tuple(layer[t] for layer in sections) for t in range(2))
    start, end, _ = s.report.tiles[0][1]                      # tile 1's layer 2
    for at in (start, start + 3, end - 1):                    # its length, its CRC, its bytes
        m = bytearray(data)
        m[at] ^= 0x21
        d = layered.read(bytes(m))
        assert d.tiles == (s.tiles[0][:1], s.tiles[1]), at    # tile 1 keeps layer 1, tile 2 everything
        assert "tile 1 of 2: layer 2" in d.report.line() and "shows layer 1" in d.report.line()


def test_a_cut_keeps_layer_1_of_every_tile_first():
    data, _ = _stream()
    s = layered.read(data)
    after_layer_1 = s.report.layers[0][1]
    for cut in range(after_layer_1, len(data)):
        d = layered.read(data[:cut])
        assert all(len(v) >= 1 for v in d.tiles) and d.report.cut, cut
    d = layered.read(data[:after_layer_1 - 1])
    assert [len(v) for v in d.tiles] == [1, 0] and "tile 2 of 2: layer 1" in d.report.line()


def test_a_cut_inside_the_caption_leaves_every_tile_with_nothing():
    data, _ = _stream()
    s = layered.read(data[:len(data) - sum(e - a for a, e, _ in layered.read(data).report.layers) - 5])
    assert s.report.caption == "cut" and s.tiles == ((), ()) and s.report.tiles == ((), ())


def test_a_refinement_or_record_from_elsewhere_fails_its_check():
    data, _ = _stream(seed=1)
    other, _ = _stream(seed=2, caption=b"another caption")
    s, o = layered.read(data), layered.read(other)
    start, end, _ = s.report.tiles[1][0]
    ostart, oend, _ = o.report.tiles[1][0]
    spliced = data[:start] + other[ostart:oend] + data[end:]     # tile 2's layer 1 from another stream
    d = layered.read(spliced)
    assert d.tiles[0] == s.tiles[0] and d.tiles[1] == ()


def test_a_repaired_header_and_hostile_bytes_after_it():
    data, _ = _stream()
    m = bytearray(data)
    m[2] ^= 0xFF
    assert layered.read(bytes(m)).report.header_fixed == 2
    rng = random.Random(5)
    head = layered.read(data).report.layers[0][0]
    for _ in range(200):
        junk = data[:head] + rng.randbytes(rng.randint(0, 3000))
        d = layered.read(junk)
        assert all(len(v) <= layered.MAX_LAYERS for v in d.tiles)


# -- the codec, with lite-tiny and flux-tiny -------------------------------------------------------

SIZE = (1280, 832)   # 1.06 Mpx: two tiles of 672×832
LAYERS = {"lite-tiny": {"layers": [0.012, 0.02]},
          "flux-tiny": {"layers": [0.001, 0.002], "channels": 1, "seed": 5, "steps": 1}}


@pytest.fixture(scope="module", params=sorted(LAYERS))
def tiny(request):
    return Codec(request.param)


@pytest.fixture(scope="module")
def image():
    return smooth_image(SIZE[1], SIZE[0], seed=3)


@pytest.fixture(scope="module")
def stream(tiny, image):
    return tiny.encode(image, caption="a wall", **LAYERS[tiny.preset.name])


@pytest.fixture(scope="module")
def decoded(tiny, stream):
    return tiny.decode(stream)


def _outside(tile, width: int, height: int, reach: int = REACH) -> torch.Tensor:
    """(H, W) mask of the pixels farther than ``reach`` px from ``tile``'s nominal box."""
    x0, y0, x1, y1 = tile.box
    near = torch.zeros(height, width, dtype=torch.bool)
    near[max(0, y0 - reach):y1 + reach, max(0, x0 - reach):x1 + reach] = True
    return ~near


def test_a_large_image_is_tiled_within_its_budget(tiny, stream):
    s = layered.read(stream)
    assert s.report.version == 4 and s.report.intact and len(s.tiles) == 2
    assert all(len(v) == 2 for v in s.tiles)
    first, last = LAYERS[tiny.preset.name]["layers"]
    assert len(stream) * 8 / (SIZE[0] * SIZE[1]) <= last
    assert len(layered.read(stream[:s.report.layers[0][1]]).tiles[0]) == 1
    assert s.report.layers[0][1] * 8 / (SIZE[0] * SIZE[1]) <= first
    info = tiny.info(stream)
    assert [t["box"] for t in info["tiles"]] == ["0–640 × 0–832", "640–1280 × 0–832"]
    assert [t["layers"] for t in info["tiles"]] == [["ok", "ok"]] * 2


@pytest.mark.parametrize("tile, layer", [(0, 0), (1, 1)])
def test_damage_to_one_tile_moves_no_pixel_beyond_64_px_of_it(tiny, stream, decoded, tile, layer):
    s = layered.read(stream)
    start, end, _ = s.report.tiles[tile][layer]
    m = bytearray(stream)
    m[(start + end) // 2] ^= 0x10
    y, report = tiny.decode_report(bytes(m))
    assert f"tile {tile + 1} of 2: layer {layer + 1}" in report.line()
    info = tiny.info(bytes(m))
    assert info["tiles"][tile]["layers"][layer] == "damaged" and info["decoded"] == report.line()
    diff = (y - decoded).abs().amax(0)
    box = tiles.grid(*SIZE)[tile]
    assert float(diff.max()) > 0                                       # the tile itself did change
    assert float(diff[_outside(box, *SIZE)].max()) == 0.0              # exactly nothing beyond 64 px
    assert float(diff[_outside(box, *SIZE, reach=tiles.OVERLAP)].max()) == 0.0


def test_a_cut_inside_layer_2_decodes(tiny, stream, decoded):
    s = layered.read(stream)
    cut = s.report.tiles[1][1][0] + 5      # tile 1 has both layers, tile 2 only its first
    y, report = tiny.decode_report(stream[:cut])
    assert report.cut and "tile 2 of 2: layer 2" in report.line() and "shows layer 1" in report.line()
    assert y.shape == decoded.shape
    left = tiles.grid(*SIZE)[0].box
    assert float((y - decoded)[:, :, :left[2] - REACH].abs().max()) == 0.0


@pytest.mark.parametrize("tiny", ["flux-tiny"], indirect=True)
def test_flux_tiles_select_their_channels_alone_and_layers_add_the_next(tiny, image, stream):
    """Each tile's layer 1 is its coded box sent alone (its own best channel); layer 2 adds to every tile the
    same number of channels, the next in that tile's own order; a large image is tiled by default."""
    from gsc.image import pad_to_multiple
    from gsc.latent.selection import rank_channels
    from gsc.latent.tiled import crop

    s, p = layered.read(stream), tiny.read(stream)
    alone = [tiny.encode(crop(image, t), channels=1, caption="a wall", seed=5, steps=1) for t in tiles.grid(*SIZE)]
    assert [v[0] for v in s.tiles] == [layered.read(a).layers[0] for a in alone]
    counts = {len(section.indices) for _, section, _ in p.tiles}
    assert len(counts) == 1 and counts.pop() > 1 and [count for _, _, count in p.tiles] == [2, 2]
    for tile, section, _ in p.tiles:
        padded = pad_to_multiple(crop(image, tile), 16)
        y = torch.round(tiny.latent_encoder.analyse(padded) / section.step) * section.step
        assert section.indices == sorted(rank_channels(y, padded, tiny.selection)[:len(section.indices)])
    assert layered.read(tiny.encode(image, channels=1, caption="a wall")).tiles is not None


def test_refine_of_a_tiled_image_is_refused_in_one_line(tiny, image, stream):
    with pytest.raises(GSCError, match="tiled image"):
        tiny.refine(image, stream, max_bpp=0.03)


# Streams of the encoder without tiles for images up to 1 Mpx (the layered one as its layers are coded and planned now):
# tiling changes none.
BEFORE_TILES = {"v3": (189, "927e988c0b69d9c5"), "v4": (192, "ac1e90d8356945ba"),
                "layers": (182, "f09e0bb1cfce063f"), "1 Mpx v4": (1223, "f680cd15968b20b5")}


def test_images_up_to_1_mpx_give_the_same_bytes_as_before_tiles():
    tiny = Codec("lite-tiny")
    small, edge = smooth_image(96, 160), smooth_image(1024, 1024, seed=1)
    made = {"v3": tiny.encode(small, caption="a wall", max_bpp=0.1, version=3),
            "v4": tiny.encode(small, caption="a wall", max_bpp=0.1, version=4),
            "layers": tiny.encode(small, caption="a wall", layers=[0.06, 0.1]),
            "1 Mpx v4": tiny.encode(edge, max_bpp=0.01, version=4)}
    assert {k: (len(v), hashlib.sha256(v).hexdigest()[:16]) for k, v in made.items()} == BEFORE_TILES


def test_gsc_info_lists_the_tiles_and_the_damage(tiny, stream, tmp_path, capsys):
    from gsc.cli import main

    s = layered.read(stream)
    start, end, _ = s.report.tiles[1][0]
    m = bytearray(stream)
    m[end - 1] ^= 1
    path = tmp_path / "damaged.gsc"
    path.write_bytes(bytes(m))
    assert main(["info", str(path)]) in (0, None)
    out = capsys.readouterr().out
    assert "1: 0–640 × 0–832, layers ok, ok" in out and "2: 640–1280 × 0–832, layers damaged" in out
    assert main(["info", str(path), "--json"]) in (0, None)
    decoded = json.loads(capsys.readouterr().out)["decoded"]
    assert "tile 2 of 2: layer 1" in decoded and "filled from its neighbours" in decoded


def test_mutated_tiled_streams_read_only_what_passed_its_checks(tiny, stream):
    """Hostile bytes, raw or re-sealed with fresh checks (so that they reach the bands parser): read raises
    nothing but StreamError, and every tile's decoded layers are the original's or a sealed mutant's own."""
    from gsc.errors import StreamError
    from gsc.testing.fuzz import mutate

    original = layered.read(stream)
    rng = random.Random(11)
    for k in range(200):
        if k % 2:
            data = mutate(stream, rng)
        else:
            sections = [[tile[j] for tile in original.tiles] for j in range(2)]
            j, t = rng.randrange(2), rng.randrange(2)
            sections[j][t] = mutate(sections[j][t], rng)
            data = layered.pack_tiles(original.header, original.caption_data, sections)
        try:
            p = tiny.read(data)
        except StreamError:
            continue
        s = layered.read(data)
        assert p.tiles is not None and [t for t, _, _ in p.tiles] == list(tiles.grid(p.width, p.height))
        assert all(count <= len(own) <= 2 for (_, _, count), own in zip(p.tiles, s.tiles))
        if k % 2 and s.header == original.header:
            assert all(own == whole[:len(own)] for own, whole in zip(s.tiles, original.tiles))
