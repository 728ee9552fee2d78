"""The latent section kinds by name (gsc.format.sections) and the range-coder helpers they share
(gsc.format.coder): every preset's kind has a reader and a sender, a header tells what the decode finds,
and the helpers pack, refuse and bound as documented."""

import numpy as np
import pytest

from gsc.codec import SENDERS
from gsc.errors import BudgetError, StreamError
from gsc.format import container as fmt
from gsc.format.coder import check_work, checked_decode, encode_with, pack_words, unpack_words
from gsc.format.sections import SECTIONS
from gsc.presets import PRESETS
from gsc.testing.fuzz import sample_stream


def test_every_preset_kind_has_a_reader_and_a_sender():
    assert set(SECTIONS) == set(SENDERS) == {"grid", "bands"}
    assert {p.coding for _, p in PRESETS.items()} <= set(SECTIONS)
    assert SECTIONS["grid"].max_channels(320) == 16 and SECTIONS["grid"].max_channels(4) == 4
    assert SECTIONS["bands"].max_channels(64) == 64


@pytest.mark.parametrize("preset", ["lite", "flux-tiny"])
def test_header_says_what_the_decode_finds(preset):
    p = PRESETS[preset]
    s = fmt.unpack(sample_stream("a door", channels=3, size=(240, 160), preset=preset, version=3))
    coding = SECTIONS[p.coding]
    head = coding.read_header(s.latent_data, p.latent_channels, 240, 160)
    section = coding.decode(s.latent_data, p.latent_channels, 240, 160, None)
    assert head.indices == section.indices and len(head.indices) == 3
    assert head.step == section.step and head.work > 0
    assert (section.q is None) == (p.coding == "bands") and (section.latent is None) == (p.coding == "grid")
    with pytest.raises(BudgetError):
        coding.decode(s.latent_data, p.latent_channels, 240, 160, head.work - 1)
    empty = coding.read_header(b"", p.latent_channels, 240, 160)
    assert (empty.indices, empty.step, empty.work) == ([], None, 0)


def test_words_pack_little_endian_without_trailing_zero_bytes():
    words = np.array([0x04030201, 0x00000605, 0], dtype=np.uint32)
    assert pack_words(words) == b"\x01\x02\x03\x04\x05\x06"
    assert unpack_words(pack_words(words)).tolist() == words[:2].tolist()
    assert pack_words(np.zeros(3, dtype=np.uint32)) == b""


def test_checked_decode_reads_the_encoders_output_and_refuses_anything_else():
    probs = np.array([[1.0, 2.0, 5.0, 1.0]] * 40)
    truth = np.random.default_rng(0).integers(0, 4, 40)

    def run(code):
        return code(probs, truth if encoding else None)

    encoding = True
    payload = encode_with(run)
    encoding = False
    assert checked_decode(payload, run).tolist() == truth.tolist()
    for bad in (payload + b"\x00", payload + b"\x07", payload[:-1]):
        with pytest.raises(StreamError):
            checked_decode(bad, run)


def test_work_check_names_the_limit():
    check_work(10, None)
    check_work(10, 10)
    with pytest.raises(BudgetError, match="entropy-decoding work"):
        check_work(11, 10)
