"""What lite's later layers cost in bytes, and what the receiver's nested bins give back, at fixed settings.

For each image and a fixed (scale code, luma codes of 3 layers, chroma code): the bytes of each layer
(``gsc.format.band_layers``) against a one-shot section at the same step (``gsc.format.bands``); the
empirical conditional entropy of q_{j−1} given q_j, band by band and plane kind (what q_{j−1} says that q_j
does not: no model of q_j given q_{j−1} saves it); and the upscaled thumbnail of each prefix, with and
without the earlier layers' bins (``BandLatent.before``), by the sender's proxy (colour-weighted error in dB
and colour drift ΔE)::

    python benchmarks/lite_layer_costs.py ../shared/data/bsds500/val
"""

from __future__ import annotations

import argparse
import math
from collections import Counter
from pathlib import Path

import numpy as np

# (image, scale code, luma codes, chroma code): settings the sender picks for these BSDS500 val images
SETTINGS = (("148026.jpg", 4, (22, 20, 16), 1), ("21077.jpg", 4, (21, 18, 14), 1),
            ("101085.jpg", 7, (17, 13, 8), 1), ("119082.jpg", 4, (23, 20, 15), 1))


def conditional_entropy(prev, latent) -> float:
    """Bits of q_{j−1} given q_j, by band and plane kind (the plug-in estimate from this image's counts)."""
    pairs = Counter()
    for i, (p, q) in enumerate(zip(prev.q, latent.q)):
        for k in range(p.shape[0]):
            pairs.update((a, b, k, i > 0) for a, b in zip(p[k].ravel().tolist(), q[k].ravel().tolist()))
    given = Counter()
    for (a, b, k, kind), n in pairs.items():
        given[(b, k, kind)] += n
    return -sum(n * math.log2(n / given[(b, k, kind)]) for (a, b, k, kind), n in pairs.items())


def measure(path: Path, scale: int, codes: tuple[int, ...], chroma: int) -> dict:
    from gsc.color import block_drift
    from gsc.format.band_layers import encode_layer
    from gsc.format.bands import BandLatent, encode_bands
    from gsc.format.tables import SCALES, ThumbnailGeometry
    from gsc.image import load_image
    from gsc.latent.lite import LiteSender, analyse, colour_distortion
    from gsc.models.thumbnail import from_planes

    x = load_image(path)
    h, w = x.shape[-2:]
    coefs = analyse(x, ThumbnailGeometry(w, h, SCALES[scale]))
    layers = [LiteSender.latent(coefs, scale, codes[0], chroma, None)]
    for code in codes[1:]:
        a = LiteSender.latent(coefs, scale, code, chroma, None)
        a = LiteSender.latent(coefs, scale, code, chroma, max(a.channels, layers[-1].channels))
        a.before = layers[-1]
        layers.append(a)

    def proxy(latent):
        up = from_planes(latent.planes(h, w), (h, w))[0]
        return -10 * math.log10(colour_distortion(up, x)), block_drift(up.clamp(0, 1), x)

    rec = {"layer_bytes": [len(encode_bands(layers[0], w, h))] +
           [len(encode_layer(a, b, w, h)) for a, b in zip(layers, layers[1:])],
           "one_shot_bytes": [len(encode_bands(a, w, h)) for a in layers],
           "parent_given_child_bytes": [conditional_entropy(a, b) / 8 for a, b in zip(layers, layers[1:])],
           "nested": [proxy(a) for a in layers[1:]],
           "plain": [proxy(BandLatent(a.scale_code, a.luma_code, a.chroma_code, 0, a.q)) for a in layers[1:]]}
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    a = ap.parse_args()
    for name, scale, codes, chroma in SETTINGS:
        r = measure(a.folder / name, scale, codes, chroma)
        over = np.cumsum(r["layer_bytes"]) / np.asarray(r["one_shot_bytes"]) - 1
        gain = [(n[0] - p[0], n[1] - p[1]) for n, p in zip(r["nested"], r["plain"])]
        print(f"{name}: layers {r['layer_bytes']} B, one-shot {r['one_shot_bytes']} B (prefixes "
              f"{', '.join(f'{100 * o:+.0f} %' for o in over)}), H(q_j-1 | q_j) "
              f"{', '.join(f'{b:.0f}' for b in r['parent_given_child_bytes'])} B; nested bins: "
              f"{', '.join(f'{d:+.3f} dB {e:+.2f} dE' for d, e in gain)} at layers 2, 3")


if __name__ == "__main__":
    main()
