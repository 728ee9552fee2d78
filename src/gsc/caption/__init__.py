"""Captions: captioners (image → text, ``captioners``) and caption coding (text ↔ bytes, ``coding``).

Submodules import their heavy dependencies (transformers, constriction) lazily.
"""
