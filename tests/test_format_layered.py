"""Stream v4 (gsc.format.layered): cuts, damage contained to its section, a header that survives any damaged
byte, refinement parts that append, and what it all costs."""

import random

import numpy as np
import pytest

from gsc.bits import leb128
from gsc.codec import Codec
from gsc.errors import GSCError, StreamError
from gsc.format import container as v3
from gsc.format import layered
from gsc.testing.fuzz import sample_layered_stream, sample_stream

GROUPS = (2, 3, 1)


def _layers_read(data):
    """(caption bytes, layers) a reader keeps, or None when it refuses."""
    try:
        s = layered.read(data)
    except StreamError:
        return None
    return s.caption_data, s.layers


def test_every_cut_decodes_the_complete_layers_before_it():
    data = sample_layered_stream(GROUPS)
    whole = layered.read(data)
    ends = [end for _, end, _ in whole.report.layers]
    assert len(ends) == 3 and ends[-1] == len(data) and whole.report.intact
    codec = Codec()
    for cut in range(len(data)):
        try:
            p = codec.read(data[:cut])
        except StreamError:
            assert cut < whole.header_bytes + len(whole.caption_data), cut   # only a cut header refuses
            continue
        complete = sum(end <= cut for end in ends)
        assert p.report.decoded == complete and not p.report.intact, cut
        assert p.indices == sorted(whole_indices(codec, data)[:sum(GROUPS[:complete])]), cut
        assert "decoded" in p.report.line()
        with pytest.raises(StreamError, match="--strict"):
            codec.read(data[:cut], strict=True)


def whole_indices(codec, data):
    """The channel indices of each layer, in layer order."""
    return [i for layer in layered.read(data).layers for i in
            codec.read(layered.pack(v3.Header(7, 256, 160), b"", [layer])).indices]


def test_the_header_survives_any_single_damaged_byte():
    data = sample_layered_stream(GROUPS)
    whole = layered.read(data)
    for i in range(whole.header_bytes):
        for value in range(256):
            if value == data[i]:
                continue
            damaged = data[:i] + bytes([value]) + data[i + 1:]
            s = layered.read(damaged)
            assert (s.header, s.caption_data, s.layers) == (whole.header, whole.caption_data, whole.layers)
            assert s.report.header_fixed == i and s.report.intact


def test_damage_drops_its_section_and_what_depends_on_it():
    data = sample_layered_stream(GROUPS)
    whole = layered.read(data)
    (start1, end1, _), (start2, end2, _), (start3, _, _) = whole.report.layers
    caption_at = whole.header_bytes
    k = layered.words(len(whole.layers[0]))    # layer 1's parity corrects one byte per codeword: hit one twice
    cases = {(caption_at + 1,): (b"", 3, "caption damaged"), (start1 + 2, start1 + 2 + k): (whole.caption_data, 0,
             "layer 1"), (start2 + 4,): (whole.caption_data, 1, "layer 2"), (start3,): (whole.caption_data, 2, "layer 3")}
    for at, (caption, layers, said) in cases.items():
        damaged = bytearray(data)
        for i in at:
            damaged[i] ^= 0x10
        p = Codec().read(bytes(damaged))
        assert p.report.damaged and p.report.decoded == layers and said in p.report.line()
        assert layered.read(bytes(damaged)).caption_data == caption
        assert p.caption == ("" if not caption else "A red wooden door with a round white knob.")
        assert len(p.indices) == sum(GROUPS[:layers])


def test_two_damaged_bytes_never_give_a_wrong_section():
    # Damage beyond what the parity corrects may be refused or repaired; what is read must be the original.
    data = sample_layered_stream(GROUPS)
    whole = layered.read(data)
    rng = random.Random(0)
    read = 0
    for _ in range(2000):
        m = bytearray(data)
        for i in rng.sample(range(whole.header_bytes), 2):
            m[i] ^= rng.randrange(1, 256)
        got = _layers_read(bytes(m))
        if got is not None:
            read += 1
            assert got[0] in (whole.caption_data, b"") and got[1] == whole.layers[:len(got[1])]
    assert read < 2000


def test_a_one_layer_stream_costs_at_most_three_bytes_more_than_v3():
    # The price of containment, on Kodak-shaped streams (768×512, a 45-byte caption or none, 491 bytes in all).
    header = v3.Header(3, 768, 512)
    for caption, extra in ((bytes(45), 3), (b"", 2)):
        old = v3.pack(header, caption, bytes(491 - 6 - len(caption)))
        assert len(old) == 491
        new = layered.pack(header, caption, [bytes(491 - 6 - len(caption))])
        assert len(new) - len(old) == extra
        assert (len(new) - len(old) + 2) / 491 <= 0.05   # parity and checks together, v3's CRC included


def test_refinement_parts_append_and_are_tied_to_their_stream():
    data = sample_layered_stream(GROUPS)
    s = layered.read(data)
    first = layered.pack(s.header, s.caption_data, s.layers[:1])
    more = layered.pack_more(s.layers[1:], layered.read(first).last_crc)
    joined = layered.read([first, more])
    assert joined.layers == s.layers and joined.report.intact and joined.report.total == 3
    assert layered.read(first + more).layers == s.layers
    other = layered.pack(s.header, b"", s.layers[:1])    # another stream: the part fails its check
    assert layered.read([other, more]).report.decoded == 1


def test_a_one_layer_stream_refined_then_cut_or_damaged_keeps_layer_1():
    # Layer 1 of a one-layer stream has no length: after it, a refinement part's records are found by its check
    # and theirs (the first record's prefix check included), and a cut or damaged part leaves it whole, unless
    # the damage hits that prefix (its LEB128 length and check byte), which tells where layer 1 ends.
    data = sample_layered_stream(GROUPS)
    s = layered.read(data)
    first = layered.pack(s.header, s.caption_data, s.layers[:1])
    joined = first + layered.pack_more(s.layers[1:], layered.read(first).last_crc)
    prefix = range(len(first), len(first) + len(leb128(len(s.layers[1]) << 4)) + 1)
    rng = random.Random(0)
    for cut in range(len(first), len(joined) + 1):
        for damage in (None, rng.randrange(len(first), len(joined))):
            m = bytearray(joined[:cut])
            if damage is not None and damage < cut:
                m[damage] ^= rng.randrange(1, 256)
            r = layered.read(bytes(m))
            assert r.layers == s.layers[:r.report.decoded], (cut, damage)
            assert r.report.decoded >= 1 or (damage in prefix and damage < cut), (cut, damage)
            assert r.report.intact == (cut in (len(first), len(joined)) and (damage is None or damage >= cut)), cut


def test_damage_inside_layer_1_never_gives_a_wrong_layer():
    # No length says where layer 1 ends: a damaged layer 1 must not pass its check at some other place.
    data = sample_stream(channels=2, size=(768, 512))
    whole = layered.read(data)
    start = whole.report.layers[0][0]
    rng = random.Random(0)
    for i in range(start, len(data)):
        for value in rng.sample([v for v in range(256) if v != data[i]], 8):
            got = _layers_read(data[:i] + bytes([value]) + data[i + 1:])
            assert got == (whole.caption_data, []), i


def test_one_or_two_flipped_bits_in_layer_1_fail_both_readings_of_its_check():
    # Layer 1's check is read plain (no more layers) or XOR MORE (more announced); no 1- or 2-bit error maps
    # one reading onto the other, so such damage is always caught (a layered stream's parity repairs it first:
    # see test_any_damaged_byte_of_layer_1_is_repaired).
    rng = random.Random(3)
    for data in (sample_stream(channels=2, size=(768, 512)),):
        whole = layered.read(data)
        start, end, _ = whole.report.layers[0]
        for k in range(600):
            m = bytearray(data)
            for bit in rng.sample(range(start * 8, end * 8), 1 + k % 2):
                m[bit // 8] ^= 0x80 >> (bit % 8)
            assert _layers_read(bytes(m)) == (whole.caption_data, []), k


def test_a_long_layer_1_is_found_whole():
    # In 600 kB layer 1's check passes by chance at ~18 other places; none can be followed by a record.
    rng = random.Random(2)
    for more in ([], [b"\x01" * 300]):
        layers = [rng.randbytes(600_000), *more]
        s = layered.read(layered.pack(v3.Header(3, 1024, 1024), b"", layers))   # 1 Mpx: one tile
        assert s.layers == layers and s.report.intact


def test_v3_streams_still_read_and_unknown_versions_refuse():
    old = sample_stream("a door", channels=2, size=(240, 160), version=3)
    p = Codec().read(old)
    assert p.report.version == 3 and p.report.intact and p.latent.channels == 2
    with pytest.raises(StreamError, match="version 5"):
        layered.read(bytes([0xB5]) + old[1:])


@pytest.fixture(scope="module")
def tiny():
    import torch

    y, x = np.mgrid[0:128, 0:192] / 192
    img = np.stack([0.5 + 0.4 * np.sin(6 * x), 0.5 + 0.4 * np.cos(5 * y), 0.3 + 0.5 * x * y])
    codec = Codec("flux-tiny", captioner="given", captioner_kwargs={"caption": "a gradient"})
    return codec, torch.from_numpy(img.astype(np.float32))


BUDGETS = [0.01, 0.014, 0.018]


def test_refine_equals_encoding_with_the_layers(tiny):
    codec, img = tiny
    full = codec.encode(img, channels=2, layers=BUDGETS)
    pixels = 192 * 128
    ends = [end for _, end, _ in layered.read(full).report.layers]
    assert all(end <= b * pixels / 8 for end, b in zip(ends, BUDGETS))
    sent = full[:ends[0]]     # the first layer of a layered stream: its check says more follow, its parity follows it
    more = codec.refine(img, sent, layers=BUDGETS[1:])
    assert sent + more == full   # nothing resent, nothing else
    a, b = codec.read(full), codec.read([sent, more])
    assert a.indices == b.indices and np.array_equal(a.q, b.q) and b.report.intact
    assert len(a.indices) > len(codec.read(sent).indices)
    step = codec.refine(img, sent, max_bpp=BUDGETS[1])
    assert codec.read([sent, step]).indices == codec.read(full[:ends[1]]).indices
    image_a, report = codec.decode_report([sent, more])
    assert report.intact and np.allclose(image_a.float().numpy(), codec.decode(sent + more).float().numpy())
    # A one-layer stream has no parity (and says no more follow): it refines all the same, into other bytes
    one = codec.encode(img, channels=2, max_bpp=BUDGETS[0])
    assert one[:-1] != sent[:len(one) - 1] and len(one) == len(sent) - 2
    p = codec.read([one, codec.refine(img, one, layers=BUDGETS[1:])])
    assert p.report.intact and p.report.decoded == 3 and p.indices[:2] == a.indices[:2]


def test_refine_refuses_another_image_and_a_cut_layer(tiny):
    codec, img = tiny
    sent = codec.encode(img, channels=2, max_bpp=BUDGETS[0])
    from gsc.format.grid import encode_latent

    s = layered.read(sent)
    p = codec.read(sent)   # flux-tiny's random g_a gives ŷ = 0 on any image: send other symbols instead
    other = layered.pack(s.header, s.caption_data, [encode_latent(p.q + 1, p.indices, 320, p.step)])
    with pytest.raises(GSCError, match="does not match this image"):
        codec.refine(img, other, max_bpp=BUDGETS[1])
    with pytest.raises(GSCError, match="stream of whole layers"):
        codec.refine(img, sent[:-1], max_bpp=BUDGETS[1])


def test_byte_accounting_covers_every_byte_of_a_layered_stream():
    data = sample_layered_stream(GROUPS)
    info = Codec().summary(data)
    assert info["header_bytes"] + info["caption_bytes"] + info["latent_bytes"] == info["total_bytes"] == len(data)
    assert info["channels"] == sum(GROUPS) and [layer["state"] for layer in info["layers"]] == ["ok"] * 3


def test_a_stream_of_which_nothing_arrived_is_refused_not_drawn():
    """Cut inside its only layer and without a caption, a stream holds nothing of the picture: decode refuses
    it in one line rather than let the generator draw from noise. With its caption, the caption is drawn."""
    codec = Codec("lite-tiny")
    bare = sample_stream(caption="", preset="lite-tiny", size=(96, 64))
    with pytest.raises(StreamError, match="nothing of the picture arrived"):
        codec.decode_report(bare[:-3])
    captioned = sample_stream(preset="lite-tiny", size=(96, 64))
    image, report = codec.decode_report(captioned[:-3])
    assert report.decoded == 0 and report.caption == "ok" and tuple(image.shape) == (3, 64, 96)


def _repairs_every_byte(data: bytes, reader) -> list[int]:
    """Each byte of ``data``'s layer 1 and its parity damaged (to a seeded other value): the positions where
    ``reader`` (a damaged stream → what it read) differs from the undamaged stream's, or not repaired."""
    whole = layered.read(data)
    start, end, _ = whole.report.layers[0]
    rng, wrong = random.Random(end), []
    for i in range(start, end):
        m = bytearray(data)
        m[i] ^= rng.randrange(1, 256)
        s = layered.read(bytes(m))
        if s.layers != whole.layers or not s.report.intact or s.report.layer_fixed != 1:
            wrong.append(i)
        elif reader is not None and reader(bytes(m)) != reader(data):
            wrong.append(i)
    return wrong


def test_any_damaged_byte_of_a_layered_layer_1_is_repaired():
    # k = ceil(L / 253) interleaved codewords, each with 2 parity bytes: one damaged byte per codeword is
    # corrected, then layer 1's CRC-16 must pass. A long layer 1 spans several codewords.
    data = sample_layered_stream(GROUPS)
    assert _repairs_every_byte(data, None) == []
    long = layered.pack(v3.Header(3, 768, 512), b"", [random.Random(4).randbytes(600), b"\x02" * 40])
    whole = layered.read(long)
    k = layered.words(600)
    assert k == 3 and whole.report.layers[0][1] - whole.report.layers[0][0] == 600 + 2 * k
    m = bytearray(long)
    start = whole.report.layers[0][0]
    for c in range(k):                  # one byte in each codeword: all repaired
        m[start + 100 * k + c] ^= 0x5A
    s = layered.read(bytes(m))
    assert s.layers == whole.layers and s.report.layer_fixed == k and "layer 1: 3 bytes repaired" in s.report.line()
    m[start + 7 * k] ^= 0x01            # a second byte in codeword 0: beyond repair, the layer is dropped
    s = layered.read(bytes(m))
    assert s.report.decoded == 0 and s.report.damaged and s.layers == []


def test_two_damaged_bytes_in_one_codeword_drop_layer_1_cleanly():
    data = sample_layered_stream(GROUPS)
    whole = layered.read(data)
    start, end, _ = whole.report.layers[0]
    rng, refused = random.Random(5), 0
    for _ in range(300):
        a, b = rng.sample(range(start, end), 2)       # one codeword: k = 1 here
        m = bytearray(data)
        m[a] ^= rng.randrange(1, 256)
        m[b] ^= rng.randrange(1, 256)
        p = Codec().read(bytes(m))
        assert p.report.decoded == 0 and p.indices == [] and "layer 1 (bytes" in p.report.line()
        refused += 1
    assert refused == 300


def test_a_damaged_record_after_a_layered_layer_1_leaves_it():
    # Layer 1's end is confirmed by its check (XOR MORE) and its parity: a damaged record prefix after it
    # drops layer 2 and what follows, not layer 1.
    data = sample_layered_stream(GROUPS)
    whole = layered.read(data)
    after = whole.report.layers[1][0]
    for i in range(after, after + 3):
        m = bytearray(data)
        m[i] ^= 0x21
        s = layered.read(bytes(m))
        assert s.layers == whole.layers[:1] and s.report.damaged and s.report.layer_fixed == 0, i


def test_finding_a_damaged_layer_1_is_bounded_on_hostile_input():
    # After a damaged layer 1, a megabyte of record prefixes that all pass their check: the reader looks at
    # MAX_MARKS of them at most, tries MAX_ENDS ends, and drops layer 1.
    import time

    head = layered.pack(v3.Header(3, 768, 512), b"", [bytes(range(100)), b"x"])
    start = layered.read(head).report.layers[0][0]
    pair = leb128(5 << 4) + bytes([layered._mark(leb128(5 << 4))])
    body = bytearray(head[:start + 102])
    body[start + 3] ^= 1
    body[start + 9] ^= 1                # two bytes in the one codeword: beyond repair
    hostile = bytes(body) + pair * ((v3.MAX_STREAM_BYTES - len(body)) // 2)
    t = time.process_time()
    s = layered.read(hostile)
    assert s.report.decoded == 0 and s.report.damaged
    assert time.process_time() - t < 30


def test_a_flux_tiny_stream_with_any_byte_of_layer_1_damaged_decodes_every_layer(tiny):
    import torch

    codec, img = tiny
    full = codec.encode(img, channels=2, layers=BUDGETS)
    want = codec.read(full)

    def payload(data):
        p = codec.read(data)
        return p.indices, p.q.tobytes(), p.caption

    assert _repairs_every_byte(full, payload) == []
    start = layered.read(full).report.layers[0][0]
    m = bytearray(full)
    m[start + 1] ^= 0x40
    image, report = codec.decode_report(bytes(m))
    assert report.decoded == 3 == len(want.report.layers) and "layer 1: 1 byte repaired" in report.line()
    assert torch.equal(image, codec.decode(full))
