"""gsc: generative semantic coding — images below 0.01 bpp from a caption and a few latent channels.

``gsc.Codec`` is the API (imported lazily, so ``import gsc`` does not load torch).
"""

__version__ = "0.1.0"
__all__ = ["Codec", "Payload", "GSCError", "StreamError"]


def __getattr__(name):
    if name in ("Codec", "Payload"):
        from . import codec

        return getattr(codec, name)
    if name in ("GSCError", "StreamError"):
        from . import errors

        return getattr(errors, name)
    raise AttributeError(f"module 'gsc' has no attribute {name!r}")
