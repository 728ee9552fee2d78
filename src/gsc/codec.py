"""``Codec``: the sender and the receiver of generative semantic coding, wired from a preset.

Sender (``encode``)::

    image ─► captioner ───────────────────────────────► caption ─► caption coder ─┐
    image ─► pad to 16 ─► latent encoder g_a ─► ŷ = round(y / Δ) ─► selection (C of N) ─► latent coder ─┤► stream

Receiver (``decode``)::

    stream ─► header ─► budget (pixels, steps, entropy-decoding work; ``gsc.budget``) ─►
           caption, (indices, ŷ_sel, Δ), size, seed, steps ─► generator ─► crop ─► image
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from .budget import DecodeLimits
from .errors import GSCError, StreamError
from .format import container as fmt
from .format import layered, tiles
from .format.sections import SECTIONS, decode_layers, decode_tiles, read_layers, read_tiles
from .presets import DEFAULT_PRESET, get_preset, preset_by_id
from .registry import Registry

CAPTION_POLICIES = ("keep", "drop", "auto")


@dataclass
class Payload:
    """What a stream carries, read without running the generator."""

    preset: str
    width: int
    height: int
    seed: int
    steps: int
    caption: str
    indices: list[int]
    q: np.ndarray | None   # (C, h, w) integer symbols (grid presets)
    step: float | tuple    # quantization step Δ (lite: Δ_Y, Δ_C)
    sizes: dict            # total / header / caption / latent bytes
    latent: object = None  # lite: the decoded ``gsc.format.bands.BandLatent``
    report: object = None  # ``gsc.format.layered.Report``: the layers decoded, and what was cut or damaged
    tiles: list | None = None  # a tiled image: (``gsc.format.tiles.Tile``, ``Section``, layers decoded) each

    @property
    def channels(self):
        """Dequantized selected channels, (C, h, w) float tensor (empty for lite: its bands are in ``latent``)."""
        import torch

        if self.q is None:
            return torch.zeros(0, 0, 0)
        return torch.from_numpy(self.q.astype(np.float32) * self.step)


class Codec:
    """Encode images to .gsc streams and decode them back, for one preset.

    Args:
        preset: preset name (``gsc.presets.PRESETS``); decode follows the preset named in the stream.
        captioner: captioner name, or None for the preset's default. ``caption=`` in ``encode`` wins.
        selection: channel selection method (``gsc.latent.selection.SELECTORS``); None for the preset's.
        captioner_kwargs / latent_kwargs / generator_kwargs: override the preset's stage options
            (e.g. ``{"captions": "captions.json"}``, ``{"checkpoint": PATH}``, ``{"adapter": PATH}``).
        max_pixels / max_steps: the receiver's decode budget (``gsc.budget.DecodeLimits``; None: the
            defaults). Streams beyond it are refused with ``BudgetError`` before any work.
    """

    def __init__(self, preset: str = DEFAULT_PRESET, captioner: str | None = None, selection: str | None = None,
                 captioner_kwargs: dict | None = None, latent_kwargs: dict | None = None,
                 generator_kwargs: dict | None = None, max_pixels: int | None = None, max_steps: int | None = None):
        self.preset = get_preset(preset)
        self.captioner_name = captioner or self.preset.captioner
        self.selection = selection or self.preset.selection  # checked by encode: reading streams needs no torch
        self.captioner_kwargs = captioner_kwargs or {}
        self.latent_kwargs = {**self.preset.latent_kwargs, **(latent_kwargs or {})}
        self.generator_kwargs = generator_kwargs or {}
        self.limits = DecodeLimits(**({} if max_pixels is None else {"max_pixels": max_pixels}), max_steps=max_steps)
        self._generators: dict = {}

    # -- stages, built on first use -------------------------------------------------------------
    @cached_property
    def captioner(self):
        from .caption.captioners import CAPTIONERS

        return CAPTIONERS.create(self.captioner_name, **self.captioner_kwargs)

    @cached_property
    def latent_encoder(self):
        from .latent.encoders import LATENT_ENCODERS

        return LATENT_ENCODERS.create(self.preset.latent, **self.latent_kwargs)

    def generator(self, preset):
        from .generate import GENERATORS, load_generators

        if preset.name not in self._generators:
            load_generators()
            kwargs = {**preset.generator_kwargs, **self.generator_kwargs}
            factory = GENERATORS.get(preset.generator)
            accepted = inspect.signature(factory).parameters
            unknown = sorted(k for k in self.generator_kwargs if k not in accepted)
            if unknown:
                raise GSCError(f"option(s) {', '.join(unknown)} do not apply to the {preset.name} preset")
            self._generators[preset.name] = factory(**kwargs)
        return self._generators[preset.name]

    # -- sender ---------------------------------------------------------------------------------
    def encode(self, image, channels: int | None = None, caption: str | None = None, image_name: str | None = None,
               step: float = 1.0, seed: int | None = None, steps: int | None = None,
               max_bpp: float | None = None, caption_policy: str | None = None, progress=None,
               layers: list[float] | None = None, version: int | None = None) -> bytes:
        """Compress ``image`` to a stream carrying its caption and C selected latent channels.

        ``layers`` (bpp, ascending; the last is ``max_bpp``): the stream's prefix up to layer i is a complete
        stream of at most ``layers[i]`` bpp (flux presets: each layer adds the next channels in selection
        order; lite: finer steps of the same thumbnail). ``version``: the container, 3 (one layer, one CRC) or
        4; None: the preset's, or 4 for several layers.

        ``caption_policy``: ``keep`` the caption, ``drop`` it (its bytes go to the latent), or ``auto``: drop
        it when it would take more than ``CAPTION_SHARE`` of the budget; None: the preset's (lite drops it,
        docs/lite-kodak.md measures why). A caption-only stream (``channels=0``) always keeps it.
        ``progress(done, total)``: lite's rate control reports its stages.

        lite (DCT bands of a thumbnail): ``max_bpp`` (default ``DEFAULT_BPP``) is rate control over the
        thumbnail's scale, its steps and C; ``channels`` caps C (the first C bands); ``step`` does not apply.

        The flux presets (a channel grid):

        - ``channels`` alone: C channels at quantization step ``step``.
        - ``channels`` and ``max_bpp``: ``step`` is the finest step tried; the finest of the steps from
          there up whose whole stream fits the budget is used (or GSCError).
        - ``max_bpp`` alone (rate control): every C from 1 to ``MAX_AUTO_CHANNELS`` at the finest step that
          fits, and the one the sender measures best (the latent encoder's synthesis, ``LatentEncoder.
          distortion``) is sent. Neither: C = 1 at ``step``.
        """
        from .format.caption import encode_caption
        from .image import as_image_tensor

        caption_policy = caption_policy or self.preset.caption_policy
        x = as_image_tensor(image)
        height, width = x.shape[-2:]
        fmt.check_size(width, height)
        version = self._version(version, layers, width, height)
        tiled = version == layered.VERSION and tiles.tiled(width, height)
        self._check_options(channels, step, max_bpp, caption_policy)
        budgets = self._check_layers(layers, max_bpp, version)
        max_bpp = budgets[0] if budgets else max_bpp
        if (seed is None) != (steps is None):
            seed = self.preset.seed if seed is None else seed
            steps = self.preset.steps if steps is None else steps
        if image_name is None and isinstance(image, (str, os.PathLike)):
            image_name = Path(image).name
        # 1. caption
        text = caption if caption is not None else self.captioner.caption(x, image_name)
        caption_data = encode_caption(text)
        if channels != 0 and self._drop_caption(caption_policy, len(caption_data), max_bpp, width * height):
            caption_data = b""
        header = fmt.Header(self.preset.id, width, height, steps=steps, seed=seed)
        declared = max(1, len(budgets))

        pack = _packer(header, caption_data, version, tiled, declared)
        # 2.–4. latent, selection, entropy coding: the sender of the preset's section kind
        senders = TILE_SENDERS if tiled else SENDERS
        return senders[self.preset.coding](self, x, pack, channels, step, max_bpp, budgets[1:], progress)

    def _version(self, version: int | None, layers, width: int, height: int) -> int:
        """The container to write: ``version``, or else 4 for several layers or an image above
        ``tiles.MAX_TILE_PIXELS`` (tiled), else the preset's."""
        if version is not None:
            return version
        many = bool(layers) and len(layers) > 1
        return layered.VERSION if many or tiles.tiled(width, height) else self.preset.stream_version

    def _check_layers(self, layers, max_bpp, version) -> list[float]:
        """The layers' budgets (bpp), checked: ascending, positive, ending at ``max_bpp`` when both are given."""
        if version not in (fmt.VERSION, layered.VERSION):
            raise GSCError(f"streams are written as version {fmt.VERSION} or {layered.VERSION}, not {version}")
        if not layers:
            return []
        budgets = [float(b) for b in layers]
        if any(b <= 0 for b in budgets) or budgets != sorted(set(budgets)):
            raise GSCError(f"--layers must be ascending positive bpp values, got {layers}")
        if max_bpp is not None and abs(max_bpp - budgets[-1]) > 1e-12:
            raise GSCError(f"--max-bpp {max_bpp} must be the last of --layers ({budgets[-1]})")
        if len(budgets) > SECTIONS[self.preset.coding].max_layers:
            raise GSCError(f"the {self.preset.name} preset sends its latent as one layer; give one budget")
        if len(budgets) > layered.MAX_LAYERS or (len(budgets) > 1 and version != layered.VERSION):
            raise GSCError(f"a stream holds at most {layered.MAX_LAYERS} layers (version {layered.VERSION}), "
                           f"got {len(budgets)}")
        return budgets

    def _check_options(self, channels, step, max_bpp, caption_policy) -> None:
        from .format.tables import STEPS
        from .latent.selection import SELECTORS

        if self.selection not in SELECTORS:
            raise GSCError(f"unknown selection {self.selection!r}; choose from {', '.join(sorted(SELECTORS))}")
        max_c = SECTIONS[self.preset.coding].max_channels(self.preset.latent_channels)
        if channels is not None and not 0 <= channels <= max_c:
            raise GSCError(f"--channels must be 0..{max_c}, got {channels}")
        if step not in STEPS:
            raise GSCError(f"--step must be one of {', '.join(map(str, STEPS))}, got {step}")
        if max_bpp is not None and not max_bpp > 0:
            raise GSCError(f"--max-bpp must be positive, got {max_bpp}")
        if caption_policy not in CAPTION_POLICIES:
            raise GSCError(f"--caption-policy must be one of {', '.join(CAPTION_POLICIES)}, got {caption_policy!r}")

    def _encode_grid(self, x, pack, channels: int | None, step: float, max_bpp: float | None,
                     more: list[float], progress=None) -> bytes:
        """The flux presets' sender: 2. g_a on the padded image, 3. selection of C channels at step Δ,
        4. entropy coding of caption and channels; then the channels of the later layers (``more``: bpp)."""
        y, padded = self._analyse(x)     # g_a once: the first layer and the later ones code the same ŷ

        def stream(c: int, delta: float):
            latent, indices, symbols = self._grid_section(y, padded, c, delta)
            return pack([latent]), indices, symbols

        def measure(indices, symbols, delta: float) -> float:
            return self.latent_encoder.distortion(padded, symbols, indices, delta)

        first = self._first_grid_layer(stream, measure, x.shape[-2:], channels, step, max_bpp)
        if not more:
            return first
        sent = layered.read(first).layers
        return pack(sent + self._more_grid_layers(y, padded, sent, len(first), more, x.shape[-1] * x.shape[-2]))

    def _encode_grid_tiles(self, x, pack, channels: int | None, step: float, max_bpp: float | None,
                           more: list[float], progress=None) -> bytes:
        """The flux presets' sender for a tiled image: g_a on each tile's coded box alone, each tile choosing
        its own channels by the same rule, at one C and Δ for every tile (so no seam shows a change of
        step); each later layer adds the same number of channels to every tile, next in the tile's own order."""
        from .latent.tiled import crop

        height, width = x.shape[-2:]
        coded = [self._analyse(crop(x, t)) for t in tiles.grid(width, height)]

        def stream(c: int, delta: float):
            made = [self._grid_section(y, padded, c, delta) for y, padded in coded]
            return pack([[m[0] for m in made]]), [m[1] for m in made], [m[2] for m in made]

        def measure(indices, symbols, delta: float) -> float:
            return sum(self.latent_encoder.distortion(padded, s, i, delta)
                       for (_, padded), i, s in zip(coded, indices, symbols))

        first = self._first_grid_layer(stream, measure, (height, width), channels, step, max_bpp)
        if not more:
            return first
        sent = [[t[0] for t in layered.read(first).tiles]]
        head, _ = read_layers(self.preset.coding, [sent[0][0]], self.preset.latent_channels, 1, 1)
        parts = [self._grid_order(y, padded, head.step) for y, padded in coded]
        made = self._grid_groups(parts, len(head.indices), head.step, more, width * height,
                                 lambda layers: len(pack(sent + layers)))
        return pack(sent + made)

    def _analyse(self, x):
        from .image import pad_to_multiple

        padded = pad_to_multiple(x, 16)
        return self.latent_encoder.analyse(padded), padded

    def _first_grid_layer(self, stream, measure, size, channels: int | None, step: float,
                          max_bpp: float | None) -> bytes:
        """The first layer's stream: ``stream(C, Δ)`` → (bytes, indices, symbols) made at C channels and step
        Δ; ``measure(indices, symbols, Δ)``: the distortion of such a choice, for the rate control."""
        from .format.tables import STEPS

        height, width = size

        def fits(data: bytes) -> bool:
            return max_bpp is None or len(data) * 8 / (width * height) <= max_bpp

        finer = [s for s in STEPS if s >= step]
        if channels is None and max_bpp is not None:
            return self._rate_control(stream, fits, measure, finer, max_bpp, width * height)
        c = 1 if channels is None else channels
        data = b""
        for delta in finer if max_bpp is not None else [step]:
            data = stream(c, delta)[0]
            if fits(data):
                return data
        raise GSCError(f"C={c} does not fit in {max_bpp} bpp even at step {STEPS[-1]} "
                       f"({len(data) * 8 / (width * height):.5f} bpp); send fewer channels")

    MAX_AUTO_CHANNELS = 8
    CAPTION_SHARE = 0.15   # caption_policy="auto": the largest share of the budget a caption may take

    def _drop_caption(self, policy: str, caption_bytes: int, max_bpp: float | None, pixels: int) -> bool:
        if policy == "auto":
            budget = (self.DEFAULT_BPP if max_bpp is None else max_bpp) * pixels / 8
            return caption_bytes > self.CAPTION_SHARE * budget
        return policy == "drop"
    DEFAULT_BPP = 0.01   # lite without --max-bpp

    def _encode_bands(self, x, pack, channels: int | None, step: float, max_bpp: float | None,
                      more: list[float], progress=None) -> bytes:
        """The lite sender: 2. g_a and 3. the rate control (scale, steps, C) in one, 4. entropy coding; with
        ``more`` (bpp), later layers at finer steps of the same thumbnail (``gsc.format.band_layers``)."""
        from .format.band_layers import encode_layer
        from .format.bands import encode_bands

        self._check_band_step(step)
        if channels == 0:
            return pack([b""])
        height, width = x.shape[-2:]
        max_bpp = self.DEFAULT_BPP if max_bpp is None else max_bpp
        first = self._latent_budget(pack, max_bpp, 1, width * height)
        budgets = [first] + [self._latent_budget(pack, b, j + 2, width * height, first) for j, b in enumerate(more)]
        if more:
            found = self.latent_encoder.layered(x, budgets, channels, progress) if budgets[0] > 0 else None
            if found is None:
                raise GSCError(f"the layers {', '.join(map(str, [max_bpp, *more]))} bpp cannot be made: the first "
                               f"must hold a thumbnail and each later one a finer step of it; space them further apart")
            return pack([encode_bands(found[0].latent, width, height)] +
                        [encode_layer(a.latent, b.latent, width, height) for a, b in zip(found, found[1:])])
        best = self.latent_encoder.rate_control(x, budgets[0], channels, progress) if budgets[0] > 0 else None
        if best is None:
            total = int(max_bpp * width * height / 8)
            raise GSCError(f"nothing fits in {max_bpp} bpp ({total} bytes): the header and caption take "
                           f"{total - budgets[0]} bytes and the coarsest thumbnail more than the rest; raise "
                           f"--max-bpp or send a shorter caption")
        return pack([encode_bands(best.latent, width, height)])

    def _check_band_step(self, step: float) -> None:
        if step != 1.0:
            raise GSCError(f"--step applies to the flux presets; the {self.preset.name} preset picks its steps "
                           f"under --max-bpp")

    def _encode_band_tiles(self, x, pack, channels: int | None, step: float, max_bpp: float | None,
                           more: list[float], progress=None) -> bytes:
        """The lite sender for a tiled image (``gsc.latent.tiled``): the whole image's rate control picks the
        settings of each layer, and every tile codes its coded box at them."""
        from .latent.tiled import tile_sections, whole_budget

        self._check_band_step(step)
        height, width = x.shape[-2:]
        grid = tiles.grid(width, height)
        if channels == 0:
            return pack([[b""] * len(grid)])
        bpps = [self.DEFAULT_BPP if max_bpp is None else max_bpp, *more]
        budgets = [self._latent_budget(pack, b, j + 1, width * height, n_tiles=len(grid)) for j, b in enumerate(bpps)]
        whole = [whole_budget(b, grid, width, height) for b in budgets]
        found = None
        if whole[0] > 0 and more:
            found = self.latent_encoder.layered(x, whole, channels, progress)
        elif whole[0] > 0:
            best = self.latent_encoder.rate_control(x, whole[0], channels, progress)
            found = None if best is None else [best]
        sections = found and tile_sections(x, grid, [c.latent for c in found], budgets)
        if not sections:
            raise GSCError(f"the {len(grid)} tiles of this {width}×{height} image do not fit in "
                           f"{', '.join(map(str, bpps))} bpp (each layer a finer step of the one before): "
                           f"raise --max-bpp, or space the layers further apart")
        return pack(sections)

    @staticmethod
    def _latent_budget(pack, bpp: float, layers: int, pixels: int, first: int | None = None,
                       n_tiles: int = 0) -> int:
        """The latent bytes a prefix of ``layers`` layers may hold within ``bpp``: the budget less what the
        container adds (header, caption, layer 1's parity, the records' lengths and checks, priced for layers
        this long; layer 1 priced at ``first`` bytes, its most, where given, as a refinement of it prices it).
        ``n_tiles``: a tiled image's, whose ``pack`` takes a section per tile per layer."""
        total = int(bpp * pixels / 8)
        size = min(total, fmt.MAX_STREAM_BYTES // (2 * layers))
        if n_tiles:
            filler = [[bytes(size // n_tiles)] * n_tiles] * layers
            return total - (len(pack(filler)) - size // n_tiles * n_tiles * layers)
        filler = [bytes(size)] * layers
        filler[0] = filler[0] if first is None else bytes(max(first, 0))
        return total - (len(pack(filler)) - sum(map(len, filler)))

    def _grid_section(self, y, padded, c: int, delta: float):
        """(grid section, indices, symbols) of ``y`` (g_a of ``padded``): its C best channels at step Δ."""
        import torch

        from .format.grid import encode_latent
        from .latent.selection import select_channels

        q = torch.round(y / delta)
        indices = select_channels(q * delta, padded, c, self.selection)  # scored on the dequantized latent
        symbols = q[indices].numpy().astype(np.int64)
        return encode_latent(symbols, indices, self.preset.latent_channels, delta), indices, symbols

    def _rate_control(self, stream, fits, measure, steps: list[float], max_bpp: float, pixels: int) -> bytes:
        """The best (C, Δ) that fits: for each C the finest fitting Δ (it only grows with C), then the
        candidate whose reconstruction by the latent encoder's synthesis is closest to the image."""
        if not hasattr(self.latent_encoder, "distortion"):
            raise GSCError(f"--max-bpp without --channels needs a sender that can measure its reconstructions; "
                           f"the {self.preset.name} preset cannot: give --channels too")
        best, k = None, 0
        for c in range(1, self.MAX_AUTO_CHANNELS + 1):
            while k < len(steps):
                data, indices, symbols = stream(c, steps[k])
                if fits(data):
                    break
                k += 1
            if k == len(steps):
                break
            d = measure(indices, symbols, steps[k])
            if best is None or d < best[0]:
                best = (d, data)
        if best is None:
            raise GSCError(f"nothing fits in {max_bpp} bpp ({max_bpp * pixels / 8:.0f} bytes) even with one channel "
                           f"at step {steps[-1]}; raise --max-bpp")
        return best[1]

    def _grid_order(self, y, padded, delta: float):
        """(ŷ, every channel best first): the selection order the grid's layers follow."""
        import torch

        from .latent.selection import rank_channels

        q = torch.round(y / delta)
        return q, rank_channels(q * delta, padded, self.selection)

    def _more_grid_layers(self, y, padded, sent: list[bytes], size: int, budgets: list[float],
                          pixels: int) -> list[bytes]:
        """The layers after ``sent`` (the grid sections a stream of ``size`` bytes already holds): each the
        most of the next channels in selection order that keep the stream within its budget (bpp).
        GSCError when ``sent`` is not what this sender makes of the image, or a layer adds nothing."""
        from .format.grid import encode_latent

        n = self.preset.latent_channels
        header, _ = read_layers(self.preset.coding, sent, n, 1, 1)
        q, order = self._grid_order(y, padded, header.step)
        used = 0
        for data in sent:
            group = sorted(order[used:used + len(read_layers(self.preset.coding, [data], n, 1, 1)[0].indices)])
            if not group or encode_latent(q[group].numpy().astype(np.int64), group, n, header.step) != data:
                raise GSCError("the stream sent does not match this image (re-encoding its layers gives other "
                               "bytes): refine needs the same image, preset and selection")
            used += len(group)

        def cost(layers: list) -> int:
            return size + sum(len(layered.pack_more([group[0]], 0)) for group in layers)

        return [group[0] for group in self._grid_groups([(q, order)], used, header.step, budgets, pixels, cost)]

    def _grid_groups(self, parts, used: int, delta: float, budgets: list[float], pixels: int,
                     cost) -> list[list[bytes]]:
        """Later layers of ``parts`` (ŷ, every channel best first) each, ``used`` channels of each already sent:
        layer j holds, for every part, the most of its next channels in its order that keep ``cost(layers)``
        (the stream's bytes) within ``budgets[j]`` bpp. GSCError when a layer adds nothing."""
        from .format.grid import encode_latent

        n = self.preset.latent_channels
        layers, most = [], SECTIONS[self.preset.coding].max_channels(n)
        for bpp in budgets:
            best = None
            for count in range(1, most - used + 1):
                groups = [sorted(order[used:used + count]) for _, order in parts]
                made = [encode_latent(q[g].numpy().astype(np.int64), g, n, delta)
                        for (q, _), g in zip(parts, groups)]
                if cost(layers + [made]) > int(bpp * pixels / 8):
                    break
                best = (count, made)
            if best is None:
                raise GSCError(f"the layer at {bpp} bpp adds nothing: the next channel does not fit in its "
                               f"{int(bpp * pixels / 8) - cost(layers)} bytes (or all {most} channels are sent)")
            used += best[0]
            layers.append(best[1])
        return layers

    def refine(self, image, sent, layers: list[float] | None = None, max_bpp: float | None = None) -> bytes:
        """The next layer(s) for ``image``, whose stream ``sent`` (bytes, or its parts) a receiver already
        holds: a refinement part, which only appended to ``sent`` makes sense. ``layers``: their budgets
        (bpp, ascending, above ``sent``'s); ``max_bpp`` alone is one layer. The result equals encoding with
        all the layers from the start."""
        from .image import as_image_tensor

        budgets = self._check_layers(layers or ([max_bpp] if max_bpp is not None else None), max_bpp,
                                     layered.VERSION)
        if not budgets:
            raise GSCError("refine needs --max-bpp (or --layers): the budget of the refined stream")
        s = layered.read(sent)
        whole_layers = s.layers and s.report.caption != "cut" and all(st == "ok" for *_, st in s.report.layers)
        if s.report.version != layered.VERSION:
            raise GSCError(f"refine needs a version-{layered.VERSION} stream, this one is version {s.report.version}: "
                           f"encode with --stream-version {layered.VERSION} (or --layers) to refine it later")
        if s.tiles:
            raise GSCError(f"refine does not apply to a tiled image (above {tiles.MAX_TILE_PIXELS / 1e6:.2f} Mpx) "
                           f"yet: encode it with every layer (--layers)")
        if s.report.damaged or not whole_layers:
            raise GSCError(f"refine needs a version-{layered.VERSION} stream of whole layers ({s.report.line()})")
        if preset_by_id(s.header.preset_id).name != self.preset.name:
            raise GSCError(f"the stream sent was made with preset {preset_by_id(s.header.preset_id).name}, "
                           f"not {self.preset.name}")
        if SECTIONS[self.preset.coding].max_layers < len(s.layers) + len(budgets):
            raise GSCError(f"the {self.preset.name} preset sends its latent as one layer: nothing to refine")
        x = as_image_tensor(image)
        if (x.shape[-1], x.shape[-2]) != (s.header.width, s.header.height):
            raise GSCError(f"the image is {x.shape[-1]}×{x.shape[-2]}, the stream sent "
                           f"{s.header.width}×{s.header.height}")
        return layered.pack_more(REFINERS[self.preset.coding](self, x, s, budgets), s.last_crc)

    def _refine_grid(self, x, s, budgets: list[float]) -> list[bytes]:
        y, padded = self._analyse(x)
        return self._more_grid_layers(y, padded, s.layers, s.report.size, budgets, s.header.width * s.header.height)

    def _refine_bands(self, x, s, budgets: list[float]) -> list[bytes]:
        """Lite's next layers: finer steps of the thumbnail ``s`` (a parsed stream) holds, at its scale."""
        from .format.band_layers import decode_layer, encode_layer
        from .format.bands import decode_bands, encode_bands

        width, height = s.header.width, s.header.height
        sender = self.latent_encoder.sender
        latents = [decode_bands(s.layers[0], width, height)]
        for data in s.layers[1:]:
            latents.append(decode_layer(data, latents[-1], width, height))
        again = sender.resend(x, latents)
        made = [encode_bands(again[0], width, height)] + [encode_layer(a, b, width, height)
                                                             for a, b in zip(again, again[1:])]
        if made != list(s.layers):
            raise GSCError("the stream sent does not match this image (re-encoding its layers gives other "
                           "bytes): refine needs the same image and preset")
        held = sum(map(len, s.layers))
        sent_part = bytes(s.report.size - held)     # header, caption, records: what is not a section's bytes

        def pack(more: list[bytes]) -> bytes:
            return sent_part + layered.pack_more(more, 0)

        found = sender.refined(x, latents[-1], held, [self._latent_budget(pack, b, j + 1, width * height)
                                                      for j, b in enumerate(budgets)])
        if found is None:
            raise GSCError(f"a layer at {budgets} bpp adds nothing: the next finer step does not fit")
        chain = [latents[-1]] + [c.latent for c in found]
        return [encode_layer(a, b, width, height) for a, b in zip(chain, chain[1:])]

    # -- receiver -------------------------------------------------------------------------------
    def _header(self, data, strict: bool = False):
        """(parsed stream, preset, steps) of ``data``: one stream's bytes, or its parts in order."""
        s = layered.read(data)
        if strict and not s.report.intact:
            raise StreamError(f"stream is incomplete or damaged ({s.report.line()}); --strict refuses it")
        preset = preset_by_id(s.header.preset_id)
        steps = preset.steps if s.header.steps is None else s.header.steps
        return s, preset, steps

    def read(self, data, strict: bool = False) -> Payload:
        """Parse and entropy-decode a stream (bytes, or a list of parts: a stream and its refinements):
        caption and channels, without generating. Damaged or missing sections are dropped and said in
        ``Payload.report``; ``strict`` refuses them instead (StreamError).

        The entropy decoder's work is checked against ``self.limits`` before it starts (``BudgetError``)."""
        from .format.caption import decode_caption

        s, preset, steps = self._header(data, strict)
        caption, report = "", s.report
        try:
            caption = decode_caption(s.caption_data)
        except StreamError:   # passed its check, yet not a caption: dropped like a damaged one
            report = report.keep(len(report.layers), caption=False)
        if s.tiles:
            return self._read_tiles(s, preset, steps, caption, report, strict)
        section, count = decode_layers(preset.coding, s.layers, preset.latent_channels, s.header.width,
                                       s.header.height, self.limits.max_symbol_work)
        if count < len(s.layers):
            report = report.keep(count)
        if strict and not report.intact:
            raise StreamError(f"stream is damaged ({report.line()}); --strict refuses it")
        return Payload(
            preset=preset.name, width=s.header.width, height=s.header.height,
            seed=preset.seed if s.header.seed is None else s.header.seed, steps=steps,
            caption=caption, indices=section.indices, q=section.q, step=section.step,
            sizes={"total": report.size, "header": s.header_bytes, "caption": len(s.caption_data),
                   "latent": report.latent_bytes}, latent=section.latent, report=report,
        )

    def _read_tiles(self, s, preset, steps: int, caption: str, report, strict: bool) -> Payload:
        """``read`` of a tiled image: each tile's verified layers decoded, their work bounded together."""
        grid = tiles.grid(s.header.width, s.header.height)
        found = decode_tiles(preset.coding, s.tiles, preset.latent_channels, grid, self.limits.max_symbol_work)
        states = report.tiles
        for t, (layers, (_, count)) in enumerate(zip(s.tiles, found)):
            if count < len(layers):    # passed its check, yet would not parse
                states = tiles.refuse(states, t, count)
        if states != report.tiles:
            report = replace(report, tiles=states, layers=tiles.layer_states(states, report.declared))
        if strict and not report.intact:
            raise StreamError(f"stream is damaged ({report.line()}); --strict refuses it")
        first = next((sec for sec, count in found if count), found[0][0])
        return Payload(
            preset=preset.name, width=s.header.width, height=s.header.height,
            seed=preset.seed if s.header.seed is None else s.header.seed, steps=steps, caption=caption,
            indices=first.indices, q=None, step=first.step,
            sizes={"total": report.size, "header": s.header_bytes, "caption": len(s.caption_data),
                   "latent": report.latent_bytes}, report=report,
            tiles=[(tile, sec, count) for tile, (sec, count) in zip(grid, found)])

    def check_budget(self, data: bytes) -> None:
        """Refuse (``BudgetError``) a stream whose image or steps exceed this receiver's limits, from its
        header alone."""
        s, preset, steps = self._header(data)
        self.limits.check_generation(preset, s.header.width, s.header.height, steps)

    def decode(self, data, progress=None):
        """Rebuild the image: (3, H, W) float in [0, 1] at the true size. ``data``: a stream, or its parts."""
        return self.decode_report(data, progress)[0]

    def decode_report(self, data, progress=None, strict: bool = False):
        """(image, ``gsc.format.layered.Report``): the image from every section that passed its check, and
        what was decoded, cut or dropped. ``strict`` refuses a cut or damaged stream (StreamError)."""
        self.check_budget(data)    # from the header, before torch is even imported
        p = self.read(data, strict)
        if p.report.declared and not p.report.shown and not p.caption:
            # a generator would draw a picture from noise alone: nothing here came from the sender
            raise StreamError(f"nothing of the picture arrived ({p.report.line()})")
        from .generate import GenerationRequest

        preset = get_preset(p.preset)
        if p.tiles is not None:
            from .generate.tiled import generate_tiles

            requests = [_tile_request(p, preset, tile, section) if count else None for tile, section, count in p.tiles]
            image = generate_tiles(self.generator(preset), requests, [t for t, _, _ in p.tiles], p.width, p.height,
                                   progress)
            return image, p.report
        request = GenerationRequest(caption=p.caption, channels=p.channels, indices=p.indices,
                                    latent_channels=preset.latent_channels, height=p.height, width=p.width,
                                    seed=p.seed, steps=p.steps, latent=p.latent)
        return self.generator(preset).generate(request, progress=progress), p.report

    def summary(self, data) -> dict:
        """A stream's sizes and settings from its headers alone (no symbol decoding, never refused for its
        work), and why this receiver's ``decode`` would refuse it, or None: what a sender reports."""
        s, preset, steps = self._header(data)
        width, height = s.header.width, s.header.height
        if s.tiles:
            found = read_tiles(preset.coding, s.tiles, preset.latent_channels, tiles.grid(width, height))
            section = next((h for h, count in found if count), found[0][0])
            section = replace(section, work=sum(h.work for h, _ in found))
            count = len(s.layers)
        else:
            section, count = read_layers(preset.coding, s.layers, preset.latent_channels, width, height)
        refused = self.limits.generation_refusal(preset, width, height, steps)
        if refused is None and section.work > self.limits.max_symbol_work:
            refused = (f"its latent section needs {section.work:.2g} units of entropy-decoding work, over the "
                       f"limit of {self.limits.max_symbol_work:.2g}; --max-pixels lifts it")
        report = s.report.keep(count) if count < len(s.layers) else s.report
        return {"total_bytes": report.size, "bpp": report.size * 8 / (width * height),
                "header_bytes": s.header_bytes, "caption_bytes": len(s.caption_data),
                "latent_bytes": report.latent_bytes,
                "channels": len(section.indices), "indices": section.indices, "step": section.step,
                **section.settings, "preset": preset.name, "width": width, "height": height,
                "steps": steps, "decode_refused": refused, "version": report.version,
                "layers": [{"bytes": f"{a}–{b}", "state": state} for a, b, state in report.layers],
                **({"tiles": _tile_summary(s, report)} if s.tiles else {}),
                "decoded": report.line()}

    def info(self, data) -> dict:
        """``summary`` and what decoding the symbols adds (the caption, the cost of generating, the damage
        found): what a stream carries and costs, and whether this receiver would decode it (never generates)."""
        p = self.read(data)    # refuses a section over the work limit, so summary's verdict is generation's
        preset = get_preset(p.preset)
        n_chars = len(p.caption)
        return {
            **self.summary(data),
            "decoded": p.report.line(),
            "caption_chars": n_chars,
            "caption_bits_per_char": (p.sizes["caption"] * 8 / n_chars) if n_chars else None,
            "caption": p.caption,
            "seed": p.seed,
            "decode_estimate_s": round(preset.decode_seconds(p.width, p.height, p.steps, generates=_generates(p)), 1),
            "cost_device": preset.cost_device,
        }

    # -- from command-line options ------------------------------------------------------------------
    @classmethod
    def from_options(cls, preset: str = DEFAULT_PRESET, captioner: str | None = None, caption: str | None = None,
                     captions: str | os.PathLike | None = None, selection: str | None = None,
                     latent_checkpoint: str | os.PathLike | None = None,
                     qwen_options: dict | None = None) -> "Codec":
        """A codec from the options ``gsc encode`` and ``gsc compare`` take.

        ``caption`` (one caption) or ``captions`` (a JSON file) pick the ``given`` captioner;
        ``qwen_options`` ({"model", "device", "max_new_tokens"}, None values dropped) apply to
        qwen2.5-vl only; ``latent_checkpoint`` replaces the latent encoder's weights. Each misuse is
        one GSCError naming the options.
        """
        captioner_kwargs = {}
        if caption is not None and captions is not None:
            raise GSCError("give --caption or --captions, not both")
        if caption is not None or captions is not None:
            if captioner not in (None, "given"):
                raise GSCError(f"--caption/--captions use the 'given' captioner, not {captioner!r}")
            captioner = "given"
            captioner_kwargs = {"caption": caption} if caption is not None else {"captions": str(captions)}
        qwen_options = {k: v for k, v in (qwen_options or {}).items() if v is not None}
        if qwen_options:
            name = captioner or get_preset(preset).captioner
            if name != "qwen2.5-vl":
                raise GSCError(f"--captioner-model, --device and --caption-tokens apply to the qwen2.5-vl "
                               f"captioner, not {name!r}")
            captioner_kwargs = qwen_options
        latent_kwargs = {"checkpoint": str(latent_checkpoint)} if latent_checkpoint else None
        return cls(preset=preset, captioner=captioner, selection=selection, captioner_kwargs=captioner_kwargs,
                   latent_kwargs=latent_kwargs)


def _packer(header, caption_data: bytes, version: int, tiled: bool, declared: int):
    """The stream of a list of latent layers (a tiled image's: a list of sections per layer), as written."""
    def pack(latent_layers: list) -> bytes:
        if version == fmt.VERSION:
            return fmt.pack(header, caption_data, latent_layers[0])
        if tiled:
            return layered.pack_tiles(header, caption_data, latent_layers, declared)
        return layered.pack(header, caption_data, latent_layers, declared)

    return pack


def _generates(p: Payload) -> bool:
    """Whether decoding runs the generator (lite skips it for a low band with no texture)."""
    latents = [sec.latent for _, sec, _ in p.tiles] if p.tiles is not None else [p.latent]
    return any(a is None or a.texture > 0 for a in latents)


def _tile_request(p: Payload, preset, tile, section):
    """The generator's request for one tile of ``p``: its coded box, its section, a seed of its own."""
    import torch

    from .generate import GenerationRequest

    width, height = tile.size
    channels = (torch.zeros(0, 0, 0) if section.q is None
                else torch.from_numpy(section.q.astype(np.float32) * section.step))
    return GenerationRequest(caption=p.caption, channels=channels, indices=section.indices,
                             latent_channels=preset.latent_channels, height=height, width=width,
                             seed=(p.seed + tile.index) % (fmt.MAX_SEED + 1), steps=p.steps, latent=section.latent)


def _tile_summary(s, report) -> list[dict]:
    """Per tile of a tiled stream: its box, its coded box and its layers' states."""
    return [{"box": "{}–{} × {}–{}".format(*tile.box[::2], *tile.box[1::2]),
             "coded": "{}–{} × {}–{}".format(*tile.coded[::2], *tile.coded[1::2]),
             "layers": [state for _, _, state in states]}
            for tile, states in zip(tiles.grid(s.header.width, s.header.height), report.tiles)]


# The sender of each latent section kind (``gsc.format.sections.SECTIONS`` holds the receiver's side).
SENDERS: Registry = Registry("latent section sender")
SENDERS.register("grid", Codec._encode_grid)
SENDERS.register("bands", Codec._encode_bands)
# The senders that code a tiled image (``gsc.format.tiles``), a section per tile per layer, by kind.
TILE_SENDERS: Registry = Registry("tiled latent section sender")
TILE_SENDERS.register("grid", Codec._encode_grid_tiles)
TILE_SENDERS.register("bands", Codec._encode_band_tiles)
# What ``refine`` appends, per kind: (codec, image, the parsed stream sent, budgets in bpp) → the new layers.
REFINERS: Registry = Registry("latent section refiner")
REFINERS.register("grid", Codec._refine_grid)
REFINERS.register("bands", Codec._refine_bands)


__all__ = ["Codec", "Payload", "REFINERS", "SENDERS", "StreamError", "TILE_SENDERS"]
