"""Caption coding: exact round trips, determinism across processes, hostile input, and the bit rate."""

import json
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gsc.format import caption as coding, wordmodel
from gsc.format.caption import (CAPTION_CODERS, DEFAULT_CAPTION_CODER, MAX_CAPTION_CHARS, decode_caption,
                                encode_caption)
from gsc.errors import GSCError, StreamError

ROOT = Path(__file__).resolve().parents[1]
KODAK_CAPTIONS_FILE = "kodak/captions.json"   # under ../shared/data: the measurement, skipped when absent
# Realistic captions written for these tests, for everything that needs text but not Kodak's.
SAMPLE_CAPTIONS = [
    "A red brick lighthouse on a rocky shore under a pale blue sky, with waves breaking white at its base.",
    "Two brown horses graze in a green meadow in front of a wooden fence and dark pine trees.",
    "A close-up of a yellow sunflower with a dark centre against a blurred field of green leaves.",
    "An old stone bridge arches over a calm river, reflected in the water, with autumn trees on both banks.",
    "A young woman in a straw hat smiles at the camera, sitting on a bench beside a white wall.",
    "A bowl of oranges and lemons on a checked tablecloth next to a glass jug of water.",
    "Snow-covered mountains rise above a frozen lake at dawn, the peaks lit pink by the low sun.",
    "A blue fishing boat rests on the sand of a small harbour, ropes and nets piled in the stern.",
]
GOLDEN = ROOT / "tests" / "data" / "caption_golden.json"

NASTY = [
    "", "a", "A", "I", "Z.", " ", "  ", "\n", "\r\n\t", ".", ",,,", "'s", "a-b-c", "ABC DEF", "McDonald's iPhone",
    "eBay", "0", "0007", "63455 and 20042", "3.14159 x 10^-3", "1" * 300, "Seifenfabrikation Alfred",
    "naïve café déjà vu", "Straße", "日本語のキャプション", "🦜🌈 parrot 🦜", "\x00\x01\x7f", "\ud800 lone surrogate",
    "\U0010ffff", "a\u200bb", "Line one.\nLine two.\n\nEnd", "tab\tseparated\tvalues", "UPPER CASE WORDS ONLY",
    "x" * 40, "qwxzjk vbnmq", "(brackets) [square] {curly} <angle> \"quotes\" “curly quotes” — dash",
    "A photo.  Two spaces.", "end with space ", " start with space", "!?;:/&",
]


def long_text(n: int = MAX_CAPTION_CHARS) -> str:
    rng = random.Random(5)
    pool = SAMPLE_CAPTIONS[:3] + ["🦜", "12345", "\n", "Ünïcödé", "zzzz"]
    s = ""
    while len(s) < n:
        s += rng.choice(pool) + " "
    return s[:n]


def kodak_captions(shared_data) -> list[str]:
    table = json.loads((shared_data / KODAK_CAPTIONS_FILE).read_text(encoding="utf-8"))
    return [v for k, v in sorted(table.items()) if not k.startswith("_")]


@pytest.mark.parametrize("name", sorted(CAPTION_CODERS))
def test_round_trip_samples(name):
    enc, dec = CAPTION_CODERS[name]
    for c in SAMPLE_CAPTIONS:
        data = enc(c)
        assert isinstance(data, bytes) and 0 < len(data) < len(c)
        assert dec(data) == c


@pytest.mark.shared_data(KODAK_CAPTIONS_FILE)
@pytest.mark.parametrize("name", sorted(CAPTION_CODERS))
def test_round_trip_kodak(name, shared_data):
    enc, dec = CAPTION_CODERS[name]
    for c in kodak_captions(shared_data):
        data = enc(c)
        assert isinstance(data, bytes) and 0 < len(data) < len(c)
        assert dec(data) == c


@pytest.mark.parametrize("name", sorted(CAPTION_CODERS))
def test_round_trip_nasty(name):
    enc, dec = CAPTION_CODERS[name]
    for c in NASTY + [long_text(), long_text(777)]:
        data = enc(c)
        assert dec(data) == c, repr(c)
        assert (data == b"") == (c == "")


def test_public_api_uses_the_default_coder():
    assert DEFAULT_CAPTION_CODER in CAPTION_CODERS
    c = SAMPLE_CAPTIONS[0]
    assert encode_caption(c) == CAPTION_CODERS[DEFAULT_CAPTION_CODER][0](c)
    assert decode_caption(encode_caption(c)) == c
    assert encode_caption("") == b"" and decode_caption(b"") == ""


@pytest.mark.parametrize("name", sorted(CAPTION_CODERS))
def test_encode_rejects_too_long_and_non_str(name):
    enc = CAPTION_CODERS[name][0]
    with pytest.raises(GSCError, match=str(MAX_CAPTION_CHARS)):
        enc("a" * (MAX_CAPTION_CHARS + 1))
    with pytest.raises(GSCError, match="must be a str"):
        enc(b"bytes")


def test_caption_that_overflows_the_stream_section_is_a_gsc_error():
    from gsc.format.container import MAX_CAPTION_BYTES

    rng = random.Random(0)
    emoji = "".join(chr(rng.randrange(0x1F300, 0x1FAFF)) for _ in range(MAX_CAPTION_CHARS))
    with pytest.raises(GSCError, match=str(MAX_CAPTION_BYTES)):
        encode_caption(emoji)
    assert len(encode_caption(emoji[:200])) <= MAX_CAPTION_BYTES


def test_golden_encodings_are_stable():
    """The stream stores no coder id: the shipped coder and its data must not drift. Regenerate on purpose
    with ``python scripts/build_caption_model.py --golden`` (and bump the stream version)."""
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert golden["coder"] == DEFAULT_CAPTION_CODER
    for text, hexdata in golden["encodings"]:
        assert encode_caption(text).hex() == hexdata
        assert decode_caption(bytes.fromhex(hexdata)) == text


DECODE_SCRIPT = """
import json, sys
from gsc.format.caption import CAPTION_CODERS
items = json.load(sys.stdin)
out = {name: [CAPTION_CODERS[name][1](bytes.fromhex(h)) for h in hexes] for name, hexes in items["decode"].items()}
enc = {name: [CAPTION_CODERS[name][0](t).hex() for t in items["texts"]] for name in CAPTION_CODERS}
json.dump({"decoded": out, "encoded": enc}, sys.stdout)
"""


def test_other_process_decodes_and_encodes_identically():
    texts = SAMPLE_CAPTIONS + NASTY[:12]
    mine = {name: [enc(t).hex() for t in texts] for name, (enc, _) in CAPTION_CODERS.items()}
    env = {"PYTHONPATH": str(ROOT / "src"), "PYTHONHASHSEED": "123", "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", DECODE_SCRIPT], input=json.dumps({"decode": mine, "texts": texts}),
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    theirs = json.loads(res.stdout)
    for name in CAPTION_CODERS:
        assert theirs["decoded"][name] == texts
        assert theirs["encoded"][name] == mine[name]


def mutations(data: bytes, rng: random.Random, n: int):
    for i in range(n):
        b = bytearray(data)
        kind = i % 5
        if kind == 0:                                  # flip one bit
            j = rng.randrange(len(b) * 8)
            b[j // 8] ^= 1 << (j % 8)
        elif kind == 1:                                # replace a few bytes
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        elif kind == 2:                                # truncate
            b = b[:rng.randrange(len(b))]
        elif kind == 3:                                # append garbage
            b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))
        else:                                          # pure noise of any length
            b = bytearray(rng.randrange(256) for _ in range(rng.randint(1, 300)))
        yield bytes(b)


@pytest.mark.parametrize("name", sorted(CAPTION_CODERS))
def test_mutated_encodings_raise_stream_error_or_decode(name):
    enc, dec = CAPTION_CODERS[name]
    rng = random.Random(2024)
    outcomes = {"error": 0, "str": 0}
    for k, data in enumerate(mutations(enc(SAMPLE_CAPTIONS[7]), rng, 600)):
        t = time.perf_counter()
        try:
            out = dec(data)
        except StreamError:
            outcomes["error"] += 1
        else:
            assert isinstance(out, str) and len(out) <= MAX_CAPTION_CHARS
            outcomes["str"] += 1
        assert time.perf_counter() - t < 2.0, f"mutation {k} took too long"
    assert sum(outcomes.values()) == 600


def test_all_zero_and_all_ff_sections_are_bounded():
    for data in (b"\x00" * 64, b"\xff" * 4096, b"\x80"):
        try:
            out = decode_caption(data)
        except StreamError:
            continue
        assert len(out) <= MAX_CAPTION_CHARS


@pytest.mark.shared_data(KODAK_CAPTIONS_FILE)
def test_model_coder_reaches_two_bits_per_char_on_kodak(shared_data):
    """A measurement on Kodak (the model is built from wordfreq and BSDS captions only)."""
    enc = CAPTION_CODERS["model"][0]
    captions = kodak_captions(shared_data)
    total_bits = sum(8 * len(enc(c)) for c in captions)
    total_chars = sum(len(c) for c in captions)
    assert total_bits / total_chars <= 2.0
    assert np.mean([8 * len(enc(c)) / len(c) for c in captions]) <= 2.0


def test_model_decoding_is_fast():
    datas = [CAPTION_CODERS["model"][0](c) for c in SAMPLE_CAPTIONS]
    times = []
    for d in datas:
        t = time.process_time()   # CPU time: other jobs on the machine do not count
        CAPTION_CODERS["model"][1](d)
        times.append(time.process_time() - t)
    assert np.median(times) < 0.05


def test_model_tables_are_exact_integers():
    """The probabilities reach the coder as int64 counts whose sums stay exactly representable in float64."""
    model = coding._word_model()
    st = wordmodel.CaptionState(model)
    for cls, tok in wordmodel.tokenize(SAMPLE_CAPTIONS[0]):
        f = st.class_counts()
        assert f.dtype == np.int64 and 0 < f.sum() < 2**53
        if cls == wordmodel.WORD:
            f = st.word_counts()
            assert f.dtype == np.int64 and f.min() >= 1 and f.sum() < 2**53
            word = tok.lower()
            st.word_seen(model.index.get(word, model.head_size + 1), word)
        st.class_seen(cls)
        st.advance(cls)


def test_ideal_cost_tracks_the_real_bytes():
    """The cost meter (used to fit the model) predicts the coded size within a few bytes."""
    model = coding._word_model()
    for c in SAMPLE_CAPTIONS[:6]:
        meter = wordmodel.CostMeter()
        assert wordmodel.walk(meter, model, c) == c
        assert abs(8 * len(encode_caption(c)) - meter.bits) < 16


def test_shipped_data_is_small():
    data = ROOT / "src" / "gsc" / "format" / "data"
    assert sum(f.stat().st_size for f in data.iterdir()) < 2_000_000


def test_the_fitting_counts_the_contexts_the_walk_looks_up(monkeypatch):
    # scripts/build_caption_model.py counts the tables over wordmodel.contexts(); the coder's walk must
    # look them up in exactly those contexts, or the shipped model is fitted on the wrong statistics.
    from gsc.format import wordmodel as wm
    from gsc.format.caption import _word_model

    seen = []

    class Recording(wm.CaptionState):
        def class_counts(self):
            seen.append(("class", self.class_key(), self.after_word()))
            return super().class_counts()

        def word_counts(self):
            counts = super().word_counts()
            seen.append(("word", self.context, self.trigram_key()))
            return counts

        def case_counts(self, word_len):
            seen.append(("case", self.case_key(word_len)))
            return super().case_counts(word_len)

    monkeypatch.setattr(wm, "CaptionState", Recording)
    text = "A dog, two cats and 3 Birds sit by the RIVER; the dog sleeps. Zürich: McDonald's"
    wm.walk(wm.CostMeter(), _word_model(), text)
    expected = []
    for ctx, cls, tok in wm.contexts(text):
        expected.append(("class", ctx.class_key(), ctx.after_word()))
        if cls == wm.WORD:
            expected += [("word", ctx.context, ctx.trigram_key()), ("case", ctx.case_key(len(tok)))]
    assert seen == expected and len(expected) > 20
