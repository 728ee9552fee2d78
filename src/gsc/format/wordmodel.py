"""An integer word-level language model for captions, shared bit-exactly by encoder and decoder.

A caption is cut into tokens (``[A-Za-z]+`` words, ``[0-9]+`` numbers, single characters) and coded
as a walk of small decisions, each an integer frequency table handed to the range coder:

    class    what comes next: <end>, <word>, <num>, one of 15 space/punctuation symbols, <other>;
             context = the two previous token classes (a corpus prior, adaptive), and after a word
             also that word's own follower counts (Witten–Bell back-off to the class table)
    word     the lower-cased word, from a mixture over the vocabulary (below); a word outside the
             vocabulary is spelled with an order-2 letter model
    case     lower / Capitalised / UPPER / mixed (then one flag per letter); context = sentence start
    num      the digit count (its bit length, then its bits), then digits from an adaptive table
    other    any other code point: its bit length, then its bits (so any ``str`` is codable)

The word distribution after context h (the previous word, or the punctuation before this word) and
g (the context the previous word was coded in), by Witten–Bell interpolation::

    P(w | g, h) = (1 − μ) · [λ_gh · c(gh, w) / n_gh + (1 − λ_gh) · P2(w | h)] + μ · cache(w)
    P2(w | h)   = λ_h · c(h, w) / n_h + (1 − λ_h) · base(w)
    λ_x = n_x / (n_x + κ · t_x)        n_x: the context's count, t_x: its distinct followers
    μ   = μ_max · m / (m + β)          m = words already in this caption; cache = their frequencies

plus a fixed share for the caption's tail and spelled words already met (a rare word, once used,
is likely to come back).

``base`` is a frozen integer unigram (``wordfreq`` English mixed with the caption corpus's
Kneser–Ney continuation counts); the bigram
and trigram counts come from the same corpus (never Kodak); ``scripts/build_caption_model.py`` writes
all tables and picks the hyper-parameters by cross-validation on the corpus. The ``head_size`` most
frequent words are mixed per token; the rest of the vocabulary (the tail) sits behind one escape
symbol with a static table, and a second escape spells the word. A tail or spelled word joins the
cache as an extra symbol, so a repeat is cheap.

Bit-exactness: every table is int64 with entries and sums below 2^53; the coder receives
``counts / total`` as float64, an exactly rounded IEEE division, so encoder and decoder hand
constriction identical inputs on every machine. Mixture weights are integers out of 2^16.
"""

from __future__ import annotations

import functools
import gzip
import json
import re
from pathlib import Path

import numpy as np

from ..errors import StreamError

CLASSES = ("<end>", "<word>", "<num>", " ", ",", ".", "-", "'", ";", ":", "(", ")", '"', "!", "?", "/",
           "&", "\n", "<other>")
END, WORD, NUM, OTHER = 0, 1, 2, len(CLASSES) - 1
SPACE = CLASSES.index(" ")
START = len(CLASSES)                     # the class "before" the first token (a context only)
SYMBOL_CLASS = {c: i for i, c in enumerate(CLASSES) if len(c) == 1}
SENTENCE_ENDS = {START, SYMBOL_CLASS["."], SYMBOL_CLASS["!"], SYMBOL_CLASS["?"], SYMBOL_CLASS["\n"]}
TOKEN_RE = re.compile(r"[A-Za-z]+|[0-9]+|.", re.S)

LOWER, CAP, UPPER, MIXED = range(4)
LETTERS = "abcdefghijklmnopqrstuvwxyz"   # spelling alphabet: 0 = end of word (and "no letter"), 1..26
WEIGHT_ONE = 1 << 16                      # mixture weights are integers out of WEIGHT_ONE
MAX_CODE_POINT = 0x10FFFF
CHUNK_BITS = 10                           # raw bits go in uniform chunks of at most this many
MAX_NUMBER_BITS = 12                      # digit runs up to 4095 long (captions stop at 2048 chars)

DEFAULT_MODEL = Path(__file__).resolve().parent / "data" / "caption_model.json.gz"


def tokenize(text: str) -> list[tuple[int, str]]:
    """``text`` → [(class id, token text)]; the token texts concatenate to ``text``."""
    out = []
    for tok in TOKEN_RE.findall(text):
        c = tok[0]
        if c.isascii() and c.isalpha():
            out.append((WORD, tok))
        elif c.isascii() and c.isdigit():
            out.append((NUM, tok))
        else:
            out.append((SYMBOL_CLASS.get(tok, OTHER), tok))
    return out


def case_of(word: str) -> int:
    if word == word.lower():
        return LOWER
    if word == word[0].upper() + word[1:].lower():
        return CAP
    if word == word.upper():
        return UPPER
    return MIXED


def word_context(prev: tuple[int, int], last_word: str) -> str:
    """The bigram table's key: the previous word when a space separates, else the symbols before."""
    c2, c1 = prev
    if c1 == START or (c1 == SPACE and c2 == START):
        return "<s>"
    if c1 == SPACE:
        return "w:" + last_word if c2 == WORD else "c:" + CLASSES[c2] + " "
    return "c:" + CLASSES[c1]


def trigram_context(last_context: str, context: str) -> str:
    """The trigram table's key: the context the previous word was coded in, then this word's context."""
    return last_context + "|" + context


def case_context(prev: tuple[int, int], word_len: int) -> str:
    c2, c1 = prev
    start = c1 in SENTENCE_ENDS or (c1 == SPACE and c2 in SENTENCE_ENDS)
    return f"{int(start)},{int(word_len == 1)}"


def _context_table(table: dict, what: str, head_size: int) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """A {context: [[word id, count], …]} table → {context: (ids, counts, total)}; every follower must be a head
    word (id < ``head_size``) with a count ≥ 1."""
    out = {}
    for key, pairs in table.items():
        ids = np.asarray([i for i, _ in pairs], dtype=np.int64)
        cnt = np.asarray([c for _, c in pairs], dtype=np.int64)
        if len(ids) == 0 or ids.max() >= head_size or cnt.min() < 1:
            raise ValueError(f"{what} context {key!r}: followers must be head words with counts ≥ 1")
        out[key] = (ids, cnt, int(cnt.sum()))
    return out


class WordModel:
    """The frozen tables (one JSON document); ``CaptionState`` holds the adaptive part of one caption."""

    def __init__(self, tables: dict):
        p = self.params = {k: int(v) for k, v in tables["params"].items()}
        self.vocab: list[str] = list(tables["vocab"])
        counts = np.asarray(tables["counts"], dtype=np.int64)
        if len(counts) != len(self.vocab) or len(counts) == 0 or counts.min() < 1:
            raise ValueError("the vocabulary needs one positive count per word")
        h = self.head_size = min(p["head_size"], len(self.vocab))
        tail = counts[h:] if len(counts) > h else np.ones(1, dtype=np.int64)
        # Head words, then the escape to the tail, then the escape to spelling.
        self.base = np.concatenate([counts[:h], [int(tail.sum()), p["spell_mass"]]]).astype(np.int64)
        self.base_total = int(self.base.sum())
        self.tail_counts = tail
        self.bigrams = _context_table(tables["bigrams"], "bigram", h)
        self.trigrams = _context_table(tables.get("trigrams", {}), "trigram", h)
        self.class_prior = {k: np.asarray(v, dtype=np.int64) for k, v in tables["classes"].items()}
        self.class_after_word = {k: np.asarray(v, dtype=np.int64)
                                 for k, v in tables.get("class_after_word", {}).items()}
        self.class_default = np.asarray(tables["class_default"], dtype=np.int64)
        self.case_prior = {k: np.asarray(v, dtype=np.int64) for k, v in tables["case"].items()}
        self.letters = np.asarray(tables["letters"], dtype=np.int64).reshape(27, 27, 27) + 1
        self.upper_flag = np.asarray(tables["upper_flag"], dtype=np.int64)
        self.digits = np.asarray(tables["digits"], dtype=np.int64)
        self.number_bits = np.asarray(tables["number_bits"], dtype=np.int64)
        self.other_bits = np.asarray(tables["other_bits"], dtype=np.int64)
        if len(self.number_bits) != MAX_NUMBER_BITS or len(self.other_bits) != 22 or len(self.digits) != 10:
            raise ValueError("malformed number / code point tables")
        self.tables = tables
        self._static: dict = {}

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """word → vocabulary id (the encoder's lookup; the decoder never needs it)."""
        return dict(zip(self.vocab, range(len(self.vocab))))

    @classmethod
    def load(cls, path: str | Path = DEFAULT_MODEL) -> "WordModel":
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return cls(json.load(f))

    def save(self, path: str | Path) -> None:
        data = json.dumps(self.tables, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        Path(path).write_bytes(gzip.compress(data, compresslevel=9, mtime=0))

    def static(self, key, counts: np.ndarray):
        """The constriction model of a table that never changes, built once."""
        m = self._static.get(key)
        if m is None:
            m = self._static[key] = _categorical(counts)
        return m


class CaptionContext:
    """Where a walk stands in a caption: the contexts every table is looked up in.

    The coder's walk (:class:`CaptionState`) and the tables' fitting (:func:`contexts`, which
    ``scripts/build_caption_model.py`` counts) move through a caption with this one class, so the model
    is fitted on exactly the contexts it is used in.
    """

    def __init__(self):
        self.prev = (START, START)           # the last two classes
        self.last_word = ""
        self.last_context = "<s>"            # the context the previous word was coded in
        self.context = "<s>"

    def class_key(self) -> str:
        return f"{self.prev[0]},{self.prev[1]}"

    def after_word(self) -> str | None:
        """The word just before, when the class follows it directly."""
        return self.last_word if self.prev[1] == WORD else None

    def enter_word(self) -> str:
        self.context = word_context(self.prev, self.last_word)
        return self.context

    def trigram_key(self) -> str:
        return trigram_context(self.last_context, self.context)

    def case_key(self, word_len: int) -> str:
        return case_context(self.prev, word_len)

    def leave_word(self, word: str) -> None:
        self.last_word = word
        self.last_context = self.context

    def advance(self, cls: int) -> None:
        self.prev = (self.prev[1], cls)


def contexts(text: str):
    """(context, class, token) for each token of ``text`` and the end, the context as the walk stands when
    it codes that token (for a word, entered). What the model's tables are counted on."""
    ctx = CaptionContext()
    for cls, tok in tokenize(text) + [(END, "")]:
        if cls == WORD:
            ctx.enter_word()
        yield ctx, cls, tok
        if cls == WORD:
            ctx.leave_word(tok.lower())
        ctx.advance(cls)


class CaptionState(CaptionContext):
    """The adaptive part of the model during one caption."""

    def __init__(self, model: WordModel):
        super().__init__()
        self.m = model
        self.classes: dict[tuple[int, int], np.ndarray] = {}
        self.cases: dict[str, np.ndarray] = {}
        self.digits = model.digits.copy()
        self.upper_flag = model.upper_flag.copy()
        self.cache: dict[int, int] = {}      # word id → count in this caption
        self.extra: list[str] = []           # tail and spelled words seen, ids head_size + 2 + j
        self.words_seen = 0

    def class_counts(self) -> np.ndarray:
        t = self.classes.get(self.prev)
        if t is None:
            prior = self.m.class_prior.get(self.class_key())
            t = self.classes[self.prev] = (prior if prior is not None else self.m.class_default).copy()
        word = self.after_word()
        after = self.m.class_after_word.get(word) if word is not None else None
        if after is None:
            return t
        # What follows this very word (space? comma? the end?), backed off Witten–Bell style to t.
        p, k = self.m.params, int(np.count_nonzero(after))
        return after * int(t.sum()) * p["kappa_class_den"] + p["kappa_class_num"] * k * t

    def class_seen(self, cls: int) -> None:
        self.classes[self.prev][cls] += self.m.params["class_increment"]

    def word_counts(self) -> np.ndarray:
        m, p = self.m, self.m.params
        mu = p["cache_max"] * self.words_seen // (self.words_seen + p["cache_beta"])
        # Tail and spelled words already met get their own share: a repeat of a rare word is likely.
        mu_x = p["extra_cache"] if self.extra else 0
        rest = WEIGHT_ONE - mu - mu_x
        self.enter_word()
        tri = m.trigrams.get(self.trigram_key())
        lam3 = 0
        if tri is not None:
            n, t = tri[2], len(tri[1])
            lam3 = rest * n * p["kappa3_den"] // (n * p["kappa3_den"] + p["kappa3_num"] * t)
        rest -= lam3
        big = m.bigrams.get(self.context)
        lam = 0
        if big is not None:
            n, t = big[2], len(big[1])
            lam = rest * n * p["kappa_den"] // (n * p["kappa_den"] + p["kappa_num"] * t)
        f = np.zeros(len(m.base) + len(self.extra), dtype=np.int64)
        f[:len(m.base)] = m.base * (rest - lam)
        if lam:
            f[big[0]] += lam * (big[1] * m.base_total // big[2])
        if lam3:
            f[tri[0]] += lam3 * (tri[1] * m.base_total // tri[2])
        if mu:
            ids = np.fromiter(self.cache, dtype=np.int64, count=len(self.cache))
            cnt = np.fromiter(self.cache.values(), dtype=np.int64, count=len(self.cache))
            f[ids] += mu * (cnt * m.base_total // self.words_seen)
        if mu_x:
            h = m.head_size + 2
            cnt = np.asarray([self.cache[h + j] for j in range(len(self.extra))], dtype=np.int64)
            f[h:] += mu_x * (cnt * m.base_total // int(cnt.sum()))
        np.maximum(f, 1, out=f)
        return f

    def word_seen(self, word_id: int, word: str) -> None:
        h = self.m.head_size
        if word_id >= h:          # a tail, spelled or extra word: cached under its extra id
            if word not in self.extra:
                self.extra.append(word)
            word_id = h + 2 + self.extra.index(word)
        self.cache[word_id] = self.cache.get(word_id, 0) + 1
        self.words_seen += 1
        self.leave_word(word)

    def case_counts(self, word_len: int) -> np.ndarray:
        key = self.case_key(word_len)
        t = self.cases.get(key)
        if t is None:
            t = self.cases[key] = self.m.case_prior[key].copy()
        return t


# --- the walk: one function drives both directions, so encoder and decoder cannot drift apart ------

def walk(coder, model: WordModel, text: str | None = None, max_chars: int = 2048) -> str:
    """Code ``text`` (encoder: ``coder.code`` writes the given symbol) or read one (decoder:
    symbols are None and ``coder.code`` returns what it decodes). Returns the caption."""
    st = CaptionState(model)
    tokens = tokenize(text) if text is not None else None
    out: list[str] = []
    n_chars = 0
    for i in range(max_chars + 1):
        tok = (tokens[i] if i < len(tokens) else (END, "")) if tokens is not None else None
        counts = st.class_counts()
        cls = coder.code(tok and tok[0], counts)
        st.class_seen(cls)
        if cls == END:
            return "".join(out)
        if cls == WORD:
            piece = _word(coder, st, tok and tok[1], max_chars - n_chars)
        elif cls == NUM:
            piece = _number(coder, st, tok and tok[1])
        elif cls == OTHER:
            piece = _other(coder, st, tok and tok[1])
        else:
            piece = CLASSES[cls]
        n_chars += len(piece)
        if n_chars > max_chars:
            raise StreamError(f"caption exceeds {max_chars} characters")
        out.append(piece)
        st.advance(cls)
    raise StreamError(f"caption exceeds {max_chars} characters")


def _word(coder, st: CaptionState, word: str | None, room: int) -> str:
    m = st.m
    h = m.head_size
    lw = word.lower() if word is not None else None
    wid = None
    if lw is not None:
        i = m.index.get(lw)
        if i is not None and i < h:
            wid = i
        elif lw in st.extra:
            wid = h + 2 + st.extra.index(lw)
        else:
            wid = h if i is not None else h + 1
    wid = coder.code(wid, st.word_counts())
    if wid < h:
        lw = m.vocab[wid]
    elif wid == h:
        t = coder.code_static(None if lw is None else m.index[lw] - h, "tail", m.tail_counts)
        if h + t >= len(m.vocab):
            raise StreamError("caption: word index out of range")
        lw = m.vocab[h + t]
    elif wid == h + 1:
        lw = _spell(coder, m, lw, room)
    else:
        lw = st.extra[wid - h - 2]
    st.word_seen(wid, lw)
    case = coder.code(None if word is None else case_of(word), st.case_counts(len(lw)))
    st.cases[st.case_key(len(lw))][case] += m.params["case_increment"]
    if case == CAP:
        return lw[0].upper() + lw[1:]
    if case == UPPER:
        return lw.upper()
    if case == MIXED:
        letters = []
        for j, c in enumerate(lw):
            up = coder.code(None if word is None else int(word[j].isupper()), st.upper_flag)
            st.upper_flag[up] += 1
            letters.append(c.upper() if up else c)
        return "".join(letters)
    return lw


def _spell(coder, m: WordModel, lw: str | None, room: int) -> str:
    letters = []
    c2 = c1 = 0
    symbols = None if lw is None else [LETTERS.index(c) + 1 for c in lw] + [0]
    for j in range(room + 1):
        s = coder.code_static(None if symbols is None else symbols[j], ("letter", c2, c1), m.letters[c2, c1])
        if s == 0:
            if not letters:
                raise StreamError("caption: empty spelled word")
            return "".join(letters)
        letters.append(LETTERS[s - 1])
        c2, c1 = c1, s
    raise StreamError("caption: spelled word too long")


def _bits(coder, value: int | None, n: int) -> int:
    """n raw bits, most significant chunk first, each chunk uniform."""
    v = 0
    while n > 0:
        k = min(n, CHUNK_BITS)
        n -= k
        part = None if value is None else (value >> n) & ((1 << k) - 1)
        v = (v << k) | coder.code_static(part, ("uniform", k), np.ones(1 << k, dtype=np.int64))
    return v


def _number(coder, st: CaptionState, digits: str | None) -> str:
    m = st.m
    b = None if digits is None else len(digits).bit_length()
    if b is not None and b > MAX_NUMBER_BITS:
        raise StreamError("caption: digit run too long")
    b = coder.code_static(None if b is None else b - 1, "number_bits", m.number_bits) + 1
    length = (1 << (b - 1)) | _bits(coder, None if digits is None else len(digits), b - 1)
    out = []
    for j in range(length):
        d = coder.code(None if digits is None else int(digits[j]), st.digits)
        st.digits[d] += m.params["digit_increment"]
        out.append(str(d))
    return "".join(out)


def _other(coder, st: CaptionState, char: str | None) -> str:
    cp = None if char is None else ord(char)
    b = coder.code_static(None if cp is None else cp.bit_length(), "other_bits", st.m.other_bits)
    cp = 0 if b == 0 else (1 << (b - 1)) | _bits(coder, cp, b - 1)
    if cp > MAX_CODE_POINT:
        raise StreamError(f"caption: code point {cp:#x} out of range")
    return chr(cp)


# --- coders: the same walk drives a range encoder, a range decoder, or an ideal cost meter ----------

def _categorical(counts: np.ndarray):
    import constriction

    return constriction.stream.model.Categorical(counts.astype(np.float64) / float(counts.sum()), perfect=False)


class RangeWriter:
    def __init__(self, model: WordModel):
        import constriction

        self.enc = constriction.stream.queue.RangeEncoder()
        self.model = model

    def code(self, symbol: int, counts: np.ndarray) -> int:
        self.enc.encode(symbol, _categorical(counts))
        return symbol

    def code_static(self, symbol: int, key, counts: np.ndarray) -> int:
        self.enc.encode(symbol, self.model.static(key, counts))
        return symbol

    def words(self) -> np.ndarray:
        return self.enc.get_compressed()


class RangeReader:
    def __init__(self, words: np.ndarray, model: WordModel):
        import constriction

        self.dec = constriction.stream.queue.RangeDecoder(words)
        self.model = model

    def code(self, symbol: None, counts: np.ndarray) -> int:
        return int(self.dec.decode(_categorical(counts)))

    def code_static(self, symbol: None, key, counts: np.ndarray) -> int:
        return int(self.dec.decode(self.model.static(key, counts)))


class CostMeter:
    """Ideal code length in bits (−log2 of the model's probabilities), for model fitting."""

    def __init__(self):
        self.bits = 0.0

    def code(self, symbol: int, counts: np.ndarray) -> int:
        self.bits += float(np.log2(counts.sum() / counts[symbol]))
        return symbol

    def code_static(self, symbol: int, key, counts: np.ndarray) -> int:
        return self.code(symbol, counts)
