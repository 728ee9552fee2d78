"""The stream format, in one place: what the bytes are, apart from how a sender chooses them.

- ``layered``: the version-4 container: header and its parity, the sections' checks, layers, refinement
  parts, the damage report (the spec: ``docs/stream-format.md``);
- ``container``: the version-3 container (header, sections' lengths, CRC) and the image fields both share;
- ``caption``: the caption section's coder, with the word model it drives (``wordmodel``, data in ``data/``);
- ``grid`` and ``bands``: the two kinds of latent section (a channel grid for the flux presets, DCT bands of
  a thumbnail for lite), on the range coder of ``coder`` (word packing, the checked decode, the work check);
- ``tables``: the literals a stream's codes index (quantization steps, thumbnail scales, texture energies);
- ``sections``: the registry of latent section kinds, by which ``gsc.codec`` reads any of them, and how a
  kind's layers stack.

The sender's choices (rate control, selection, g_a) are in ``gsc.latent``, the captioners in
``gsc.caption``, the receiver in ``gsc.generate``. Changing anything here changes the stream: keep
``tests/test_format_golden.py`` (v3) and ``tests/test_format_layered.py`` (v4) passing, or bump the version.
"""
