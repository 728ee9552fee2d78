"""The v3 stream, pinned: fixed small inputs must encode to the same bytes (sha256) and decode to the same
pixels as the code that defined version 3. The values were recorded on the code before ``gsc.format`` was
made; a change here is a format change, so regenerate them only with a version bump."""

import hashlib

import numpy as np
import pytest

from gsc.codec import Codec
from gsc.testing.fuzz import sample_stream

CAPTION = "A smooth gradient of red, green and blue."

# name: (preset, encode options, bytes, sha256, per-channel mean of the decode, its top-left 2×2 pixels)
ENCODED = {
    "lite": ("lite", dict(max_bpp=0.5, caption_policy="keep"), 135,
             "c4b83f0433def2185afd80750fd4df1d167da4b78e1b483caa457266b325aaf5",
             [0.50978, 0.48330, 0.38685],
             [0.55120, 0.54808, 0.55052, 0.54836, 0.88125, 0.87928, 0.88042, 0.87971,
              0.29934, 0.30052, 0.30200, 0.30473]),
    "lite-no-caption": ("lite", dict(max_bpp=0.1, caption_policy="drop"), 75,
                        "527aede882a521734d0ac5bf738dee2d8a71efa064a2d0e1dd28a229ce1a6fc2",
                        [0.50838, 0.48162, 0.38840],
                        [0.56751, 0.56474, 0.56621, 0.56444, 0.89113, 0.88906, 0.88951, 0.88860,
                         0.32737, 0.32905, 0.32985, 0.33326]),
    "flux-tiny": ("flux-tiny", dict(channels=2, step=1.0), 20,
                  "092379457317b388f674ee512369408cf682b6ff889596c71ff76d2076e2a3d6",
                  [0.48295, 0.53001, 0.66535],
                  [0.45323, 0.47877, 0.51509, 0.53946, 0.57773, 0.57611, 0.55584, 0.50021,
                   0.53058, 0.54517, 0.53674, 0.57264]),
    "flux-tiny-step2": ("flux-tiny", dict(channels=3, step=2.0), 22,
                        "b822c8827ea4465236a8d391848cc42b2091567a7d192345e422f63db8e576bb",
                        [0.48291, 0.53001, 0.66528],
                        [0.45330, 0.47872, 0.51513, 0.53937, 0.57771, 0.57609, 0.55580, 0.50021,
                         0.53056, 0.54517, 0.53672, 0.57264]),
}
# sample_stream (synthetic symbols, no weights), 240×160, C = 3: (bytes, sha256)
SAMPLED = {
    "lite": (48, "dc50cb1fc4216aeae0a5e02f10f30d4b26330fd47d09018a95dbe14154d6d08a"),
    "flux-tiny": (206, "3637d4bf41ac1b8c6009da5f830b10cab129a41f0104258914c8b442ded27a31"),
}


def _image(w: int = 96, h: int = 64):
    import torch

    y, x = np.mgrid[0:h, 0:w] / max(w, h)
    img = np.stack([0.5 + 0.4 * np.sin(6 * x), 0.5 + 0.4 * np.cos(5 * y), 0.3 + 0.5 * x * y])
    return torch.from_numpy(img.astype(np.float32))


@pytest.mark.parametrize("preset", sorted(SAMPLED))
def test_sampled_streams_keep_their_v3_bytes(preset):
    data = sample_stream(channels=3, size=(240, 160), preset=preset, version=3)
    assert (len(data), hashlib.sha256(data).hexdigest()) == SAMPLED[preset]


@pytest.mark.parametrize("name", sorted(ENCODED))
def test_encoded_streams_keep_their_v3_bytes_and_pixels(name, one_thread):
    preset, options, size, digest, mean, corner = ENCODED[name]
    codec = Codec(preset, captioner="given", captioner_kwargs={"caption": CAPTION})
    data = codec.encode(_image(), **options, version=3)
    assert (len(data), hashlib.sha256(data).hexdigest()) == (size, digest)
    pixels = Codec().decode(data).float()
    assert pixels.shape == (3, 64, 96)
    assert pixels.mean(dim=(1, 2)).tolist() == pytest.approx(mean, abs=2e-4)
    assert pixels[:, :2, :2].flatten().tolist() == pytest.approx(corner, abs=2e-3)
