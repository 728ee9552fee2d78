"""The generator interface and its registry: what every receiver generator implements and is chosen from.

A leaf of :mod:`gsc.generate`: the generators import it, and the package imports them (to register
them) without a circle.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..registry import Registry


@dataclass
class GenerationRequest:
    """Everything the receiver knows, all of it read from the stream."""

    caption: str                    # "" when the stream carries none
    channels: torch.Tensor          # (C, h, w) float: dequantized selected channels, h = ceil(H/16)
    indices: list[int]              # which of the N latent channels these are (ascending)
    latent_channels: int            # N
    height: int                     # true image size; generators pad to their stride and crop back
    width: int
    seed: int
    steps: int
    latent: object = None           # the decoded latent section where the preset codes more than a grid
                                    # (lite: ``gsc.format.bands.BandLatent``)

    def condition(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The full N-channel grid with unselected channels zeroed, and the (N,) 0/1 mask."""
        c, h, w = self.channels.shape
        grid = torch.zeros(self.latent_channels, h, w, dtype=torch.float32)
        mask = torch.zeros(self.latent_channels, dtype=torch.float32)
        if c:
            grid[self.indices] = self.channels.float()
            mask[self.indices] = 1.0
        return grid, mask


class Generator:
    """Interface: ``generate(request) -> (3, H, W)`` float image in [0, 1]."""

    latent_channels: int

    def generate(self, request: GenerationRequest, progress=None) -> torch.Tensor:
        raise NotImplementedError


GENERATORS: Registry[Generator] = Registry("generator")


def tile_progress(progress, index: int, n: int, steps: int):
    """Part ``index`` of ``n`` reported on the whole decode's scale: ``progress(i)`` means i + 1 of ``steps``
    done, so step i of this part is (index · steps + i + 1) / n − 1 (a fraction where n > 1)."""
    if progress is None or n == 1:
        return progress
    return lambda i: progress((index * steps + i + 1) / n - 1)
