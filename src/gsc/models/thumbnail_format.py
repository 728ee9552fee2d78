"""The lite latent's format, torch-free: the tables a stream's codes index, and the thumbnail's geometry.

These literals, not a formula, are what the codes mean: changing one changes the stream format.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..bits import ceil_div

BLOCK = 8
BANDS = BLOCK * BLOCK
# Downscale factors f (image side / thumbnail side): 4 · 2^(k/4), k = 0..15 (4 bits).
SCALES = tuple(round(4 * 2 ** (k / 4), 4) for k in range(16))
# Luma steps Δ_Y in 8-bit levels of the orthonormal DCT: 4 · 2^(k/4), k = 0..31 (5 bits).
LUMA_STEPS = tuple(round(4 * 2 ** (k / 4), 4) for k in range(32))
# Chroma step ratios Δ_C / Δ_Y: 2^((j − 2)/2), j = 0..7 (3 bits).
CHROMA_RATIOS = tuple(round(2 ** ((j - 2) / 2), 4) for j in range(8))
ROUNDING = 1 / 3            # AC dead zone: |c| < (1 − r)·Δ quantizes to 0
DC_STEP = 0.5               # the DC band's step, in units of Δ: block means carry the colour (cheap to code)
# Texture target energies (mean square of the detail above the cut, images in [0, 1]) by 3-bit code; 0: none.
TEXTURE_ENERGY = (0.0,) + tuple(1e-4 * 2 ** k for k in range(7))


@dataclass(frozen=True)
class ThumbnailGeometry:
    """Sizes of the three planes of an image's thumbnail at scale f."""

    width: int
    height: int
    scale: float

    @property
    def luma(self) -> tuple[int, int]:
        """(h, w) of Y."""
        return max(1, round(self.height / self.scale)), max(1, round(self.width / self.scale))

    @property
    def chroma(self) -> tuple[int, int]:
        h, w = self.luma
        return ceil_div(h, 2), ceil_div(w, 2)

    def blocks(self, plane: int) -> tuple[int, int]:
        h, w = self.luma if plane == 0 else self.chroma
        return ceil_div(h, BLOCK), ceil_div(w, BLOCK)

    def plane_sizes(self) -> list[tuple[int, int]]:
        return [self.luma, self.chroma, self.chroma]
