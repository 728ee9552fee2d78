"""Captioners: the sender's first stage, image → a short description that the generator is prompted with.

Chosen by name from ``CAPTIONERS``:

- ``qwen2.5-vl``: Qwen2.5-VL-7B-Instruct (or a local copy, ``model=PATH``), greedy decoding, asked
  for one concise sentence (``QwenCaptioner.PROMPT``). The paper captions with an MLLM.
- ``given``: a caption supplied by the user, ``caption=TEXT``, or per image from ``captions=FILE.json``
  ({image file name: caption}; keys starting with "_" are notes).
- ``none``: the empty caption (the generator then relies on the latent channels alone).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import GSCError
from ..registry import Registry


class Captioner:
    def caption(self, image: torch.Tensor, image_name: str | None = None) -> str:
        """image: (3, H, W) float in [0, 1]; image_name: the file name, for captioners that look it up."""
        raise NotImplementedError


CAPTIONERS: Registry[Captioner] = Registry("captioner")


@CAPTIONERS.register("none")
class NoCaptioner(Captioner):
    def caption(self, image, image_name=None) -> str:
        return ""


def load_captions(path: str | Path) -> dict[str, str]:
    """A JSON object {image file name: caption}; keys starting with "_" are notes and are skipped."""
    path = Path(path)
    if not path.is_file():
        raise GSCError(f"captions file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GSCError(f"captions file {path} is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise GSCError(f"captions file {path} must hold a JSON object {{image name: caption}}")
    table = {k: v for k, v in data.items() if not k.startswith("_")}
    bad = [k for k, v in table.items() if not isinstance(v, str)]
    if bad:
        raise GSCError(f"captions file {path}: the caption of {bad[0]!r} is not a string")
    return table


@CAPTIONERS.register("given")
class GivenCaptioner(Captioner):
    """``caption=TEXT`` for every image, or ``captions=FILE.json`` looked up by the image's file name."""

    def __init__(self, caption: str | None = None, captions: str | Path | None = None):
        if (caption is None) == (captions is None):
            raise GSCError("the 'given' captioner needs exactly one of caption=TEXT or captions=FILE.json")
        self.text = caption
        self.path = Path(captions) if captions is not None else None
        self.table: dict[str, str] = {}
        if self.path is not None:
            self.table = load_captions(self.path)

    def caption(self, image, image_name=None) -> str:
        if self.text is not None:
            return self.text
        key = Path(image_name).name if image_name else None
        if key is None or key not in self.table:
            raise GSCError(f"captions file {self.path} has no caption for image {image_name!r}")
        return self.table[key]


class QwenCaptioner(Captioner):
    """Qwen2.5-VL (Bai et al. 2025) asked for a one-sentence description, decoded greedily.

    The prompt (``PROMPT``) asks for what the generator needs and the latent channels cannot carry
    cheaply: the objects, their colours, their layout and the setting, in about 30 words, which keeps
    the caption near 1.6 bits/char × 180 chars ≈ 40 bytes. ``max_new_tokens`` caps its length.

    Works without torchvision (``Qwen2_5_VLProcessor`` needs it for videos): the tokenizer, the PIL
    image processor and the one step the processor adds, expanding ``<|image_pad|>`` to one copy per
    merged patch, ``image_grid_thw.prod() // merge_size²``.
    """

    DEFAULT_MODEL = "Qwen/Qwen2.5-VL-7B-Instruct"
    PROMPT = ("Describe this image in one concise sentence of about 30 words: the main objects, their colours "
              "and layout, and the setting.")
    # Qwen's own chat format, for tokenizers that carry no chat template.
    CHAT = ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
            "<|vision_start|><|image_pad|><|vision_end|>{prompt}<|im_end|>\n<|im_start|>assistant\n")
    IMAGE_PAD = "<|image_pad|>"

    def __init__(self, model, tokenizer, image_processor, max_new_tokens: int = 60, prompt: str = PROMPT):
        if max_new_tokens < 1:
            raise GSCError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.max_new_tokens = int(max_new_tokens)
        self.prompt = prompt

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path = DEFAULT_MODEL, device: str | None = None, **kwargs):
        from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path_or_id))
            image_processor = Qwen2VLImageProcessorPil.from_pretrained(str(path_or_id))
            model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(path_or_id), dtype=dtype).to(device)
        except (OSError, ValueError) as e:
            raise GSCError(f"cannot load Qwen2.5-VL from {str(path_or_id)!r}: {str(e).splitlines()[0]}") from None
        except (RuntimeError, AssertionError) as e:  # e.g. a CUDA device on a machine without one
            raise GSCError(f"device {device!r} is not usable here ({str(e).splitlines()[0]})") from None
        return cls(model, tokenizer, image_processor, **kwargs)

    def chat_text(self) -> str:
        """The prompt in Qwen's chat format, with a single ``<|image_pad|>`` where the image goes."""
        if getattr(self.tokenizer, "chat_template", None):
            messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": self.prompt}]}]
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.CHAT.format(prompt=self.prompt)

    def inputs(self, image: torch.Tensor) -> dict:
        """The model's inputs for one image: token ids with the image pads expanded, pixel patches, grid."""
        from PIL import Image

        if image.ndim != 3 or image.shape[0] != 3:
            raise GSCError(f"captioner expects a (3, H, W) image, got shape {tuple(image.shape)}")
        arr = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        vision = self.image_processor(images=[Image.fromarray(arr)], return_tensors="pt")
        merge = getattr(self.image_processor, "merge_size", 2)
        n_pads = int(vision["image_grid_thw"][0].prod()) // (merge * merge)
        text = self.chat_text()
        if text.count(self.IMAGE_PAD) != 1:
            raise GSCError(f"the chat text must hold exactly one {self.IMAGE_PAD}; got {text.count(self.IMAGE_PAD)}")
        text = text.replace(self.IMAGE_PAD, self.IMAGE_PAD * n_pads)
        tokens = self.tokenizer(text, return_tensors="pt")
        device = next(self.model.parameters()).device
        dtype = next(self.model.parameters()).dtype
        return {"input_ids": tokens["input_ids"].to(device),
                "attention_mask": tokens["attention_mask"].to(device),
                "pixel_values": vision["pixel_values"].to(device, dtype),
                "image_grid_thw": vision["image_grid_thw"].to(device)}

    @torch.no_grad()
    def caption(self, image, image_name=None) -> str:
        inputs = self.inputs(image)
        out = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
        new = out[0, inputs["input_ids"].shape[1]:]
        return " ".join(self.tokenizer.decode(new, skip_special_tokens=True).split())


@CAPTIONERS.register("qwen2.5-vl")
def qwen_captioner(model: str = QwenCaptioner.DEFAULT_MODEL, max_new_tokens: int = 60,
                   prompt: str = QwenCaptioner.PROMPT, device: str | None = None) -> QwenCaptioner:
    """``model``: a Hugging Face id or a local folder holding Qwen2.5-VL-*-Instruct."""
    return QwenCaptioner.from_pretrained(model, device=device, max_new_tokens=max_new_tokens, prompt=prompt)
