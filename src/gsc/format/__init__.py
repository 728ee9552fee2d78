"""The stream format, in one place: what the bytes are, apart from how a sender chooses them.

- ``container``: the header, the sections' lengths, the CRC (the spec: ``docs/stream-format.md``);
- ``caption``: the caption section's coder, with the word model it drives (``wordmodel``, data in ``data/``);
- ``grid`` and ``bands``: the two kinds of latent section (a channel grid for the flux presets, DCT bands of
  a thumbnail for lite), on the range coder of ``coder`` (word packing, the checked decode, the work check);
- ``tables``: the literals a stream's codes index (quantization steps, thumbnail scales, texture energies);
- ``sections``: the registry of latent section kinds, by which ``gsc.codec`` reads any of them.

The sender's choices (rate control, selection, g_a) are in ``gsc.latent``, the captioners in
``gsc.caption``, the receiver in ``gsc.generate``. Changing anything here changes the stream: keep
``tests/test_format_golden.py`` passing, or bump the version.
"""
