"""Receiver generators: caption + selected channels → image.

Every generator implements :class:`Generator` and registers a factory in ``GENERATORS``; the preset
names which one a stream needs. Factories import their heavy stacks (diffusers) lazily.
"""

from __future__ import annotations

from .base import GENERATORS, GenerationRequest, Generator

__all__ = ["GENERATORS", "GenerationRequest", "Generator", "load_generators"]


def load_generators() -> None:
    """Import the modules that register generators (cheap: they import heavy stacks, diffusers included,
    only when a generator is built)."""
    from . import flux, flux_tiny, lite  # noqa: F401
