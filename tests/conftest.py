import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

# Measurement data (Kodak, BSDS500) and upstream weights (TAEF2) live outside the repository, in ../shared.
# A test that needs them says so with @pytest.mark.shared_data("kodak", ...) or shared_models("taef2"): where
# a part is absent the test is skipped, with the reason in the summary (-ra), never silently and never with
# an import error.
SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = SHARED / "data"
SHARED_FOLDERS = {"shared_data": SHARED_DATA, "shared_models": SHARED / "models"}


def pytest_configure(config):
    for mark, folder in SHARED_FOLDERS.items():
        config.addinivalue_line("markers", f"{mark}(*parts): needs ../shared/{folder.name}/<part>; skipped when absent")


def pytest_runtest_setup(item):
    for name, folder in SHARED_FOLDERS.items():
        for mark in item.iter_markers(name):
            missing = [part for part in mark.args if not (folder / part).exists()]
            if missing:
                pytest.skip(f"data-dependent: ../shared/{folder.name}/{', '.join(missing)} not present")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder (pair with the shared_data mark, which skips when a part is absent)."""
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from threads, and oversubscribed cores make them crawl."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# Fakes shared by test modules (they import them: `from conftest import TinyCodec`).

class TinyCodec:
    """A real, plain codec standing in for ``gsc.codec.Codec`` (same encode/decode/info calls) to exercise the
    evaluation loop: a downscaled WebP, larger for more channels.

    Stream: width, height (2 × uint16 big-endian), then the WebP file.
    """

    def __init__(self):
        self.calls = []

    def encode(self, image, channels, caption=None, image_name=None, step=1.0, seed=None, steps=None,
               caption_policy=None):
        import imagecodecs

        self.calls.append((image_name, channels, caption))
        h, w = image.shape[-2:]
        d = 16 // 2 ** min(channels, 3)
        a = (image.clamp(0, 1) * 255 + 0.5).floor().to(torch.uint8).permute(1, 2, 0).numpy()
        small = np.asarray(Image.fromarray(a).resize((max(1, w // d), max(1, h // d)), Image.LANCZOS))
        return struct.pack(">HH", w, h) + imagecodecs.webp_encode(small, level=30, lossless=False)

    def decode(self, data):
        import imagecodecs

        w, h = struct.unpack(">HH", data[:4])
        small = imagecodecs.webp_decode(data[4:])[..., :3]
        big = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))
        return torch.from_numpy(big.copy()).permute(2, 0, 1).float() / 255

    def info(self, data):
        return {"header_bytes": 4, "caption_bytes": 0, "latent_bytes": len(data) - 4}


def make_dataset(folder: Path, n: int = 3) -> Path:
    """n PNGs of 192×176 (smooth random colour), im0.png …, in folder."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        small = (rng.random((11, 12, 3)) * 255).astype(np.uint8)
        Image.fromarray(small).resize((192, 176), Image.BICUBIC).save(folder / f"im{i}.png")
    return folder
