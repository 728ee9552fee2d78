"""The receiver's decode budget: the work a stream's header implies, judged before any allocation or loop.

Three quantities bound a decode, and all three are known from the header and the latent section's
first bytes: the image's pixels (memory and generator time), the sampling steps (generator time), and
the entropy decoder's work (``gsc.format.sections``: a section header's ``work``). The defaults admit
what a real sender at ≤ 0.01 bpp produces, e.g. a 4K image at the preset's default steps; ``--max-pixels`` /
``--max-steps`` (``Codec(max_pixels=, max_steps=)``) lift them for a trusted sender. Measurements:
docs/stream-format.md, "Decode budget". Torch-free, so that ``gsc info`` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BudgetError, GSCError
from .format.container import MAX_PIXELS, MAX_STEPS

DEFAULT_MAX_PIXELS = 1 << 24    # 16.8 Mpx: 4K UHD (8.3 Mpx), 4096 × 4096, a 12 Mpx phone photo
# Entropy-decoding work allowed per admitted pixel, in symbol_work units (≈ ns of CPU time): 2^24 px →
# 5.4e8; the slowest sections that fit read in ≤ 0.5 s of CPU time (docs/stream-format.md).
WORK_PER_PIXEL = 32


def duration(seconds: float) -> str:
    """Seconds as a short human figure: 40 s, 13 min, 37.3 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class DecodeLimits:
    """``max_pixels``: the largest image decoded; ``max_steps``: the most sampling steps (None: the
    preset's ``max_steps``). The entropy decoder's work limit scales with ``max_pixels``."""

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_steps: int | None = None

    def __post_init__(self):
        if not isinstance(self.max_pixels, int) or not 1 <= self.max_pixels <= MAX_PIXELS:
            raise GSCError(f"--max-pixels must be 1..{MAX_PIXELS} (the format's limit), got {self.max_pixels}")
        if self.max_steps is not None and (not isinstance(self.max_steps, int)
                                           or not 1 <= self.max_steps <= MAX_STEPS):
            raise GSCError(f"--max-steps must be 1..{MAX_STEPS} (the format's limit), got {self.max_steps}")

    @property
    def max_symbol_work(self) -> int:
        return WORK_PER_PIXEL * self.max_pixels

    def steps_limit(self, preset) -> int:
        return preset.max_steps if self.max_steps is None else self.max_steps

    def generation_refusal(self, preset, width: int, height: int, steps: int) -> str | None:
        """Why this receiver will not generate the image, or None when it fits the budget."""
        cost = f"≈ {duration(preset.decode_seconds(width, height, steps))} on {preset.cost_device}"
        if width * height > self.max_pixels:
            return (f"stream is {width}×{height} ({width * height / 1e6:.1f} Mpx), over this receiver's limit of "
                    f"{self.max_pixels / 1e6:.1f} Mpx ({cost}); --max-pixels lifts it for a trusted sender")
        if steps > self.steps_limit(preset):
            return (f"stream asks for {steps} sampling steps, over this receiver's limit of "
                    f"{self.steps_limit(preset)} for {preset.name} ({cost}); --max-steps lifts it for a trusted sender")
        return None

    def check_generation(self, preset, width: int, height: int, steps: int) -> None:
        reason = self.generation_refusal(preset, width, height, steps)
        if reason:
            raise BudgetError(reason)
