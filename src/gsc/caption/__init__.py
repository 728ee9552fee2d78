"""Captions: captioners (image → text, ``captioners``) and the caption embedding (``embedding``). The caption
coder (text ↔ bytes) is part of the stream format: ``gsc.format.caption``.

Submodules import their heavy dependencies (transformers) lazily.
"""
