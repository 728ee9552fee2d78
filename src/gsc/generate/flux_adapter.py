"""The FLUX adapter: a zero-initialised ControlNet that feeds the selected latent channels into FLUX.

Token mapping. FLUX works on packed tokens: the VAE maps an H×W image to 16 channels at H/8 × W/8,
and the pipeline packs 2×2 patches of that into one token, so the image tokens form an
(H/16) × (W/16) grid in row-major order (token k = row i·(W/16) + column j, position id (0, i, j)).
The sender's latent ŷ is at 1/16 too, so latent position (i, j) is exactly token k: no resampling.
``pack_latents`` / ``unpack_latents`` / ``latent_image_ids`` are that mapping for the VAE latent and
``pack_condition`` for the condition grid (the tests check them against diffusers' own packing).

Design (one adapter for every C and every index set)::

    grid (N, h, w): ŷ_sel in its channels, 0 elsewhere ─┐
    mask (N,): 1 for sent channels ─────────────────────┴─► per token [values ‖ mask] (2N)
        ─► condition_embedder (Linear 2N→d_c, SiLU, Linear d_c→64)
        ─► FluxControlNetModel: x_embedder(x_t) + controlnet_x_embedder(cond)   (zero-init)
             ─► 4 double-stream + 2 single-stream blocks (copies of the base's first blocks)
             ─► controlnet_blocks / controlnet_single_blocks                    (zero-init linear)
        ─► added to the frozen base's hidden states: double-stream sample k goes to base blocks
           [k·⌈19/4⌉, (k+1)·⌈19/4⌉), single-stream sample k to [k·19, (k+1)·19)
           (FluxTransformer2DModel's own ``controlnet_block_samples`` arguments)

The mask tells the adapter which channels were sent, so a zero value is not confused with a missing
channel. With zero-initialised projections, base + adapter equals the base exactly at step 0.
"""

from __future__ import annotations

import torch
from torch import nn

from diffusers import FluxControlNetModel, FluxTransformer2DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin

# Parts of the base that the ControlNet copies (as diffusers' FluxControlNetModel.from_transformer).
_COPIED = ("pos_embed", "time_text_embed", "context_embedder", "x_embedder")


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """(B, 16, 2h, 2w) VAE latent → (B, h·w, 64) tokens: 2×2 patches, row-major (FLUX's packing)."""
    b, c, h2, w2 = latents.shape
    x = latents.reshape(b, c, h2 // 2, 2, w2 // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h2 // 2) * (w2 // 2), c * 4)


def unpack_latents(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, h·w, 64) tokens of an (h, w) token grid → (B, 16, 2h, 2w) VAE latent; inverse of ``pack_latents``."""
    b, _, d = tokens.shape
    x = tokens.reshape(b, h, w, d // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, d // 4, 2 * h, 2 * w)


def latent_image_ids(h: int, w: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """(h·w, 3) rotary position ids of the image tokens: (0, i, j) for token i·w + j."""
    i, j = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ids = torch.stack([torch.zeros_like(i), i, j], dim=-1).reshape(h * w, 3)
    return ids.to(device=device, dtype=dtype)


def pack_condition(grid: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, N, h, w) channel grid and (B, N) mask → (B, h·w, 2N) token features, row-major.

    Token k = i·w + j carries [grid[:, :, i, j] ‖ mask]: the same order as FLUX's packed latents.
    """
    b, n, h, w = grid.shape
    values = grid.permute(0, 2, 3, 1).reshape(b, h * w, n)
    return torch.cat([values, mask[:, None, :].to(values.dtype).expand(b, h * w, n)], dim=-1)


class FluxChannelAdapter(ModelMixin, ConfigMixin):
    """Zero-init FluxControlNetModel (M double-stream, S single-stream blocks) on the selected channels."""

    # fp8 storage (enable_layerwise_casting) leaves these in the compute dtype, as FluxTransformer2DModel
    # does: norms and position embeddings are small and sensitive, and the condition embedder reads raw ŷ.
    _skip_layerwise_casting_patterns = ["pos_embed", "norm", "condition_embedder"]
    # Group offloading moves a model's top-level ModuleLists block by block; the blocks sit one level down.
    _group_offload_block_modules = ["controlnet"]

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 320,
        condition_dim: int = 256,
        num_layers: int = 4,
        num_single_layers: int = 2,
        in_channels: int = 64,
        attention_head_dim: int = 128,
        num_attention_heads: int = 24,
        joint_attention_dim: int = 4096,
        pooled_projection_dim: int = 768,
        guidance_embeds: bool = False,
        axes_dims_rope: tuple[int, int, int] = (16, 56, 56),
    ):
        super().__init__()
        self.condition_embedder = nn.Sequential(
            nn.Linear(2 * latent_channels, condition_dim), nn.SiLU(), nn.Linear(condition_dim, in_channels))
        self.controlnet = FluxControlNetModel(
            patch_size=1, in_channels=in_channels, num_layers=num_layers, num_single_layers=num_single_layers,
            attention_head_dim=attention_head_dim, num_attention_heads=num_attention_heads,
            joint_attention_dim=joint_attention_dim, pooled_projection_dim=pooled_projection_dim,
            guidance_embeds=guidance_embeds, axes_dims_rope=list(axes_dims_rope))

    @classmethod
    def from_transformer(cls, transformer: FluxTransformer2DModel, latent_channels: int, num_layers: int = 4,
                         num_single_layers: int = 2, condition_dim: int = 256) -> "FluxChannelAdapter":
        """A new adapter whose blocks start as copies of the base's first blocks (ControlNet's recipe)."""
        cfg = transformer.config
        adapter = cls(latent_channels=latent_channels, condition_dim=condition_dim, num_layers=num_layers,
                      num_single_layers=num_single_layers, in_channels=cfg.in_channels,
                      attention_head_dim=cfg.attention_head_dim, num_attention_heads=cfg.num_attention_heads,
                      joint_attention_dim=cfg.joint_attention_dim, pooled_projection_dim=cfg.pooled_projection_dim,
                      guidance_embeds=cfg.guidance_embeds, axes_dims_rope=tuple(cfg.axes_dims_rope))
        net = adapter.controlnet
        for name in _COPIED:
            getattr(net, name).load_state_dict(getattr(transformer, name).state_dict())
        for mine, theirs in ((net.transformer_blocks, transformer.transformer_blocks),
                             (net.single_transformer_blocks, transformer.single_transformer_blocks)):
            for block, source in zip(mine, theirs):
                block.load_state_dict(source.state_dict())
        return adapter if adapter.dtype == transformer.dtype else adapter.to(transformer.dtype)

    def forward(self, hidden_states: torch.Tensor, grid: torch.Tensor, mask: torch.Tensor,
                encoder_hidden_states: torch.Tensor, pooled_projections: torch.Tensor, timestep: torch.Tensor,
                img_ids: torch.Tensor, txt_ids: torch.Tensor, guidance: torch.Tensor | None = None):
        """Residuals for the base: (double-stream samples, single-stream samples).

        hidden_states: (B, h·w, 64) packed x_t; grid: (B, N, h, w); mask: (B, N); timestep t in [0, 1].
        """
        cond = self.condition_embedder(pack_condition(grid, mask).to(hidden_states.dtype))
        out = self.controlnet(
            hidden_states=hidden_states, controlnet_cond=cond, encoder_hidden_states=encoder_hidden_states,
            pooled_projections=pooled_projections, timestep=timestep, img_ids=img_ids, txt_ids=txt_ids,
            guidance=guidance, return_dict=False)
        return out[0], out[1]
