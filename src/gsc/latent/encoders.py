"""Latent encoders: the sender's pretrained learned codec analysis transform, image → ŷ at 1/16.

- ``lite``: gsc's own sender: a YCbCr thumbnail in 8×8 DCT bands (64 channels), with its rate control.
- ``mbt2018-mean``: CompressAI's mean-scale hyperprior model (Minnen et al. 2018); quality 8 gives
  320 channels at 1/16. Weights from CompressAI's zoo URL where a network exists, or a local checkpoint
  (``checkpoint=PATH``); ``random_init_seed`` builds it with seeded random weights (tests only).

``analyse`` returns the continuous latent y; the sender sends ŷ = round(y / step), the receiver uses
step · ŷ. ``step`` (the quantization step) is carried in the stream.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import torch

from ..errors import GSCError
from ..models import zoo
from ..registry import Registry


class LatentEncoder:
    latent_channels: int
    stride: int = 16

    def analyse(self, image: torch.Tensor) -> torch.Tensor:
        """(3, H, W) in [0, 1], H and W multiples of 16 → (N, H/16, W/16) float."""
        raise NotImplementedError


LATENT_ENCODERS: Registry[LatentEncoder] = Registry("latent encoder")


@LATENT_ENCODERS.register("lite")
class LiteLatentEncoder(LatentEncoder):
    """The lite sender (``gsc.latent.lite``): thumbnail DCT bands and the rate control that picks their
    scale and steps, making the best one's low band through the receiver's g_s (loaded from ``synthesis``)."""

    latent_channels = 64

    def __init__(self, synthesis: str | Path | None = None):
        self.synthesis_path = zoo.weights_path("lite-synthesis", path=synthesis)  # checked here, loaded on use

    @cached_property
    def sender(self):
        from .lite import LiteSender

        return LiteSender(zoo.load("lite-synthesis", path=self.synthesis_path))

    @torch.no_grad()
    def rate_control(self, image: torch.Tensor, budget: int, channels: int | None = None, progress=None):
        """The best ``BandLatent`` whose section fits ``budget`` bytes, or None; ``progress(done, total)``
        after each stage of the search."""
        return self.sender.rate_control(image, budget, channels, progress)

    def layered(self, image: torch.Tensor, budgets: list[int], channels: int | None = None, progress=None):
        """A candidate per layer, each prefix within its latent budget (``LiteSender.layered``), or None."""
        return self.sender.layered(image, budgets, channels, progress)


@LATENT_ENCODERS.register("lite-tiny")
class TinyLiteLatentEncoder(LiteLatentEncoder):
    """The lite sender with the ``lite-tiny`` preset's seeded random g_s (``gsc.models.lite.tiny_models``),
    the one its receiver builds from the same seed: tests of the wiring, no weights file."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    @cached_property
    def sender(self):
        from ..models.lite import tiny_models
        from .lite import LiteSender

        return LiteSender(tiny_models(self.seed)[0])


MBT2018_MEAN_URL = "https://compressai.s3.amazonaws.com/models/v1/mbt2018-mean-{quality}-{hash}.pth.tar"


@LATENT_ENCODERS.register("mbt2018-mean")
class CompressAILatentEncoder(LatentEncoder):
    """CompressAI ``mbt2018_mean``: its ``g_a`` is the analysis transform."""

    def __init__(self, quality: int = 8, checkpoint: str | Path | None = None, random_init_seed: int | None = None,
                 metric: str = "mse"):
        from ._compressai import import_compressai

        import_compressai()
        from compressai.zoo import mbt2018_mean

        if checkpoint is not None:  # a given checkpoint wins over a preset's random_init_seed
            from compressai.zoo.image import model_architectures

            path = Path(checkpoint)
            if not path.exists():
                raise GSCError(f"CompressAI checkpoint not found: {path}")
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state)
            self.net = model_architectures["mbt2018-mean"].from_state_dict(state)
        elif random_init_seed is not None:
            with torch.random.fork_rng():
                torch.manual_seed(random_init_seed)
                self.net = mbt2018_mean(quality=quality, pretrained=False)
        else:
            try:  # the zoo downloads from CompressAI's URL (see compressai.zoo.image.model_urls)
                self.net = mbt2018_mean(quality=quality, metric=metric, pretrained=True)
            except Exception as e:  # no network: say what to do instead
                raise GSCError(f"cannot download mbt2018-mean q{quality} ({type(e).__name__}); "
                               "pass a local checkpoint with --latent-checkpoint PATH") from None
        self.net.eval()
        self.latent_channels = int(self.net.g_a[-1].out_channels)

    @torch.no_grad()
    def analyse(self, image: torch.Tensor) -> torch.Tensor:
        return self.net.g_a(image[None].float())[0]
