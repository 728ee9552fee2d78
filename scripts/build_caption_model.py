"""Build the caption coders' shipped data from wordfreq and a caption corpus (never Kodak).

    python scripts/build_caption_model.py --corpus data/captions/bsds500.json [--tune]

Writes into src/gsc/format/data/:
  caption_model.json.gz   the integer word model of ``gsc.format.wordmodel`` (vocabulary, counts,
                          bigrams, class/case/letter tables, hyper-parameters)
  captions.zstd-dict      a zstd dictionary trained on the corpus

Hyper-parameters are chosen by k-fold cross-validation on the corpus (``--tune``): fit the tables on
k − 1 folds, measure the ideal code length on the held-out fold. Kodak is only ever measured
(``benchmarks/caption_bits.py``), never read here.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from gsc.format import wordmodel as wm  # noqa: E402

DATA = ROOT / "src" / "gsc" / "format" / "data"
BASE_TOTAL = 1 << 24

DEFAULTS = {
    "vocab_size": 200_000,     # wordfreq words kept (plus every corpus word)
    "head_size": 30_000,       # words mixed per token; the rest sit behind the tail escape
    "wordfreq_weight": 0.5,    # base = w · wordfreq + (1 − w) · corpus unigram
    "corpus_add": 0.5,         # additive smoothing of the corpus unigram, per wordfreq word (× its share)
    "spell_frac": 0.004,       # base share of the spelling escape
    "kappa_num": 2, "kappa_den": 1,
    "trigrams": 1, "trigram_min": 2, "kappa3_num": 2, "kappa3_den": 1,
    "class_after_word": 1, "class_after_word_min": 2, "kappa_class_num": 2, "kappa_class_den": 1,
    "cache_max": 0.0, "cache_beta": 4, "extra_cache": 0.02,
    "class_increment": 4, "case_increment": 4, "digit_increment": 2,
    "continuation": 0.0,       # share of Kneser–Ney continuation counts in the corpus unigram
    "class_scale": 1,
}


def load_corpus(path: Path) -> list[str]:
    d = json.loads(path.read_text(encoding="utf-8"))
    if "kodak" in str(path).lower():
        raise SystemExit("refusing to build the caption model from Kodak captions (they are for measuring)")
    return [v for k, v in sorted(d.items()) if not k.startswith("_") and isinstance(v, str) and v]


def wordfreq_counts() -> dict[str, float]:
    """wordfreq's English frequencies, split by gsc's tokenizer (\"it's\" → it, s), letters only."""
    import wordfreq

    out: dict[str, float] = defaultdict(float)
    for w, f in wordfreq.get_frequency_dict("en").items():
        for cls, tok in wm.tokenize(w):
            if cls == wm.WORD:
                out[tok.lower()] += f
    return dict(out)


def fit(corpus: list[str], wf: dict[str, float], params: dict) -> dict:
    """The tables of ``WordModel`` from a corpus and wordfreq, all integers."""
    p = {**DEFAULTS, **params}
    uni: Counter = Counter()
    big: dict[str, Counter] = defaultdict(Counter)
    tri: dict[str, Counter] = defaultdict(Counter)
    after_word: dict[str, Counter] = defaultdict(Counter)
    classes: dict[str, Counter] = defaultdict(Counter)
    case: dict[str, Counter] = defaultdict(Counter)
    digits, flags, number_bits, other_bits = Counter(), Counter(), Counter(), Counter()
    for caption in corpus:  # counted in the contexts the coder's own walk looks the tables up in
        for ctx, cls, tok in wm.contexts(caption):
            classes[ctx.class_key()][cls] += 1
            if ctx.after_word() is not None:
                after_word[ctx.after_word()][cls] += 1
            if cls == wm.WORD:
                lw = tok.lower()
                uni[lw] += 1
                big[ctx.context][lw] += 1
                tri[ctx.trigram_key()][lw] += 1
                c = wm.case_of(tok)
                case[ctx.case_key(len(tok))][c] += 1
                if c == wm.MIXED:
                    flags.update(int(ch.isupper()) for ch in tok)
            elif cls == wm.NUM:
                digits.update(int(ch) for ch in tok)
                number_bits[len(tok).bit_length() - 1] += 1
            elif cls == wm.OTHER:
                other_bits[ord(tok).bit_length()] += 1

    # Vocabulary: the most frequent wordfreq words plus every corpus word, by base count.
    ranked = sorted(wf, key=lambda w: (-wf[w], w))
    kept = ranked[:p["vocab_size"]]
    words = sorted(set(kept) | set(uni))
    wf_total = sum(wf.get(w, 0.0) for w in words)
    if p["continuation"]:
        # Kneser–Ney's idea: a word's back-off weight is the number of contexts it follows, not its count.
        cont: Counter = Counter()
        for followers in big.values():
            cont.update(followers.keys())
        scale = sum(uni.values()) / max(1, sum(cont.values()))     # keep the corpus's total weight
        c = p["continuation"]
        uni_backoff = Counter({w: (1 - c) * uni[w] + c * scale * cont[w] for w in uni})
    else:
        uni_backoff = uni
    n_uni = sum(uni_backoff.values())
    a = p["wordfreq_weight"]
    prob = {}
    for w in words:
        pw = wf.get(w, 0.0) / wf_total
        pd = (uni_backoff[w] + p["corpus_add"] * len(uni) * pw) / (n_uni + p["corpus_add"] * len(uni)) if n_uni else pw
        prob[w] = a * pw + (1 - a) * pd
    vocab = sorted(words, key=lambda w: (-prob[w], w))
    counts = [max(1, round(BASE_TOTAL * prob[w])) for w in vocab]
    head = max(p["head_size"], max((vocab.index(w) + 1 for w in uni), default=0))
    index = {w: i for i, w in enumerate(vocab)}

    # Letters of out-of-vocabulary words: learnt from the wordfreq words just outside the vocabulary.
    letters = np.zeros((27, 27, 27), dtype=np.int64)
    in_vocab = set(vocab)
    rare = [w for w in ranked[p["vocab_size"] // 2:] if w not in in_vocab] or ranked[p["vocab_size"] // 2:]
    for w in rare:
        c2 = c1 = 0
        for s in [wm.LETTERS.index(ch) + 1 for ch in w] + [0]:
            letters[c2, c1, s] += 1
            c2, c1 = c1, s

    def table(counter: Counter, n: int, floor: int = 1) -> list[int]:
        return [floor + p["class_scale"] * counter[i] for i in range(n)]

    n_cls = len(wm.CLASSES)
    class_tables = {}
    for key, cnt in classes.items():
        t = table(cnt, n_cls)
        c1 = int(key.split(",")[1])
        if c1 in (wm.WORD, wm.NUM):
            t[c1] = 0          # a word never follows a word (nor a number a number)
        class_tables[key] = t
    class_default = [1] * n_cls
    return {
        "params": {
            "head_size": head,
            "spell_mass": max(1, round(BASE_TOTAL * p["spell_frac"])),
            "kappa_num": p["kappa_num"], "kappa_den": p["kappa_den"],
            "kappa3_num": p["kappa3_num"], "kappa3_den": p["kappa3_den"],
            "kappa_class_num": p["kappa_class_num"], "kappa_class_den": p["kappa_class_den"],
            "cache_max": round(wm.WEIGHT_ONE * p["cache_max"]), "cache_beta": p["cache_beta"],
            "extra_cache": round(wm.WEIGHT_ONE * p["extra_cache"]),
            "class_increment": p["class_increment"], "case_increment": p["case_increment"],
            "digit_increment": p["digit_increment"],
        },
        "vocab": vocab,
        "counts": counts,
        "bigrams": {k: sorted((index[w], c) for w, c in v.items()) for k, v in sorted(big.items())},
        "trigrams": {k: sorted((index[w], c) for w, c in v.items()) for k, v in sorted(tri.items())
                     if p["trigrams"] and sum(v.values()) >= p["trigram_min"]},
        "class_after_word": {w: [v[c] for c in range(n_cls)] for w, v in sorted(after_word.items())
                             if p["class_after_word"] and sum(v.values()) >= p["class_after_word_min"]},
        "classes": dict(sorted(class_tables.items())),
        "class_default": class_default,
        "case": {f"{s},{o}": [1 + 4 * case[f"{s},{o}"][c] for c in range(4)] for s in (0, 1) for o in (0, 1)},
        "letters": letters.reshape(-1).tolist(),
        "upper_flag": [1 + flags[0], 1 + flags[1]],
        "digits": [1 + digits[d] for d in range(10)],
        "number_bits": [1 + number_bits[b] for b in range(wm.MAX_NUMBER_BITS)],
        "other_bits": [1 + other_bits[b] for b in range(22)],
    }


def bits_per_char(model: wm.WordModel, captions: list[str]) -> float:
    bits = chars = 0
    for c in captions:
        meter = wm.CostMeter()
        wm.walk(meter, model, c)
        bits += meter.bits
        chars += len(c)
    return bits / chars


def cross_validate(corpus: list[str], wf: dict, params: dict, folds: int = 5) -> float:
    bits = chars = 0.0
    for k in range(folds):
        test = corpus[k::folds]
        train = [c for i, c in enumerate(corpus) if i % folds != k]
        model = wm.WordModel(fit(train, wf, params))
        bpc = bits_per_char(model, test)
        n = sum(map(len, test))
        bits += bpc * n
        chars += n
    return bits / chars


def tune(corpus, wf, folds: int, start: dict) -> dict:
    """Coordinate descent over a small grid, one parameter at a time, from ``start``."""
    grid = {
        "wordfreq_weight": [0.05, 0.1, 0.2, 0.35, 0.5],
        "kappa_num": [1, 2, 3, 5],
        "kappa3_num": [1, 2, 4, 8],
        "trigram_min": [1, 2, 3],
        "kappa_class_num": [1, 2, 4, 8],
        "class_after_word_min": [1, 2, 4],
        "cache_max": [0.0, 0.02, 0.05],
        "cache_beta": [2, 4, 8],
        "extra_cache": [0.005, 0.02, 0.05],
        "spell_frac": [0.001, 0.004, 0.01],
        "corpus_add": [0.1, 0.5, 2.0],
        "continuation": [0.0, 0.5, 1.0],
        "class_increment": [1, 4, 16],
        "vocab_size": [100_000, 200_000],    # all ~290k words gain < 0.002 bits/char for +0.5 MB
    }
    best = dict(start)
    score = cross_validate(corpus, wf, best, folds)
    print(f"start: {score:.4f} bits/char", flush=True)
    for name, values in grid.items():
        for v in values:
            if v == {**DEFAULTS, **best}[name]:
                continue
            s = cross_validate(corpus, wf, {**best, name: v}, folds)
            print(f"  {name}={v}: {s:.4f}", flush=True)
            if s < score - 1e-4:
                score, best = s, {**best, name: v}
        print(f"{name} → {({**DEFAULTS, **best})[name]} ({score:.4f})", flush=True)
    return best


def train_zstd_dict(corpus: list[str], size: int) -> bytes:
    import zstandard

    samples = [c.encode("utf-8") for c in corpus]
    return zstandard.train_dictionary(size, samples, level=19).as_bytes()


GOLDEN_TEXTS = [
    "A brown dog runs across a green lawn toward a red ball, with a white fence and tall trees behind it.",
    "Two children in yellow raincoats stand under a striped umbrella on a wet city street at night.",
    "Close-up of 3 ripe tomatoes on a wooden board; Zürich, 2024.",
]


def write_golden() -> None:
    from gsc.format.caption import DEFAULT_CAPTION_CODER, encode_caption

    path = ROOT / "tests" / "data" / "caption_golden.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"coder": DEFAULT_CAPTION_CODER, "encodings": [[t, encode_caption(t).hex()] for t in GOLDEN_TEXTS]}
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=ROOT / "data" / "captions" / "bsds500.json")
    ap.add_argument("--out", type=Path, default=DATA)
    ap.add_argument("--tune", action="store_true", help="choose hyper-parameters by cross-validation")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--params", type=Path, default=DATA / "caption_model_params.json",
                    help="hyper-parameters (read; written by --tune)")
    ap.add_argument("--zstd-dict-size", type=int, default=4096)
    ap.add_argument("--golden", action="store_true",
                    help="only rewrite tests/data/caption_golden.json from the shipped coder (on purpose!)")
    args = ap.parse_args(argv)
    if args.golden:
        write_golden()
        return

    corpus = load_corpus(args.corpus)
    print(f"{len(corpus)} corpus captions, {sum(map(len, corpus))} characters")
    wf = wordfreq_counts()
    params = json.loads(args.params.read_text()) if args.params.exists() else {}
    params = {k: v for k, v in params.items() if not k.startswith("_")}
    if args.tune:
        params = tune(corpus, wf, args.folds, params)
    cv = cross_validate(corpus, wf, params, args.folds)
    print(f"cross-validated: {cv:.4f} bits/char")
    record = {**params, "_corpus_captions": len(corpus), "_cv_bits_per_char": round(cv, 4),
              "_note": f"{args.folds}-fold cross-validated ideal code length on the corpus; not Kodak"}
    args.params.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    model = wm.WordModel(fit(corpus, wf, params))
    args.out.mkdir(parents=True, exist_ok=True)
    model.save(args.out / "caption_model.json.gz")
    (args.out / "captions.zstd-dict").write_bytes(train_zstd_dict(corpus, args.zstd_dict_size))
    for f in ("caption_model.json.gz", "captions.zstd-dict"):
        print(f"wrote {args.out / f} ({(args.out / f).stat().st_size} bytes)")


if __name__ == "__main__":
    main()
