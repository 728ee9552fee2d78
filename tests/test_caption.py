"""Captioners: the registry, the 'given' and 'none' captioners, and Qwen2.5-VL on a tiny random model."""

import json
from pathlib import Path

import pytest
import torch

from gsc.caption.captioners import CAPTIONERS, GivenCaptioner, QwenCaptioner
from gsc.errors import GSCError

KODAK_CAPTIONS = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak" / "captions.json"
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
           "<|video_pad|>"]
# Qwen's chat template, cut down to the parts a single image + text message uses.
QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}"
    "<|vision_start|><|image_pad|><|vision_end|>{% else %}{{ content['text'] }}{% endif %}{% endfor %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_registry_names():
    assert {"qwen2.5-vl", "given", "none"} <= set(CAPTIONERS.names())
    with pytest.raises(GSCError, match="unknown captioner 'gpt'"):
        CAPTIONERS.create("gpt")


def test_none_captioner_returns_empty():
    assert CAPTIONERS.create("none").caption(torch.rand(3, 32, 32), "a.png") == ""


def test_given_text():
    cap = CAPTIONERS.create("given", caption="A red door.")
    assert cap.caption(torch.rand(3, 32, 32), None) == "A red door."


def test_given_file_looks_up_by_file_name(tmp_path):
    f = tmp_path / "caps.json"
    f.write_text(json.dumps({"_about": "notes", "x.png": "An x.", "y.png": "A y."}))
    cap = CAPTIONERS.create("given", captions=str(f))
    assert cap.caption(torch.rand(3, 32, 32), "some/folder/y.png") == "A y."
    with pytest.raises(GSCError, match=r"caps\.json.*'z\.png'"):
        cap.caption(torch.rand(3, 32, 32), "z.png")
    with pytest.raises(GSCError, match="_about"):
        cap.caption(torch.rand(3, 32, 32), "_about")


@pytest.mark.shared_data("kodak/captions.json")
def test_given_kodak_file():
    cap = GivenCaptioner(captions=KODAK_CAPTIONS)
    text = cap.caption(torch.rand(3, 32, 32), "kodim01.png")
    assert text == json.loads(KODAK_CAPTIONS.read_text())["kodim01.png"] and len(text) > 20


@pytest.mark.parametrize("content, match", [("{not json", "not valid JSON"), ('["a"]', "JSON object"),
                                            ('{"a.png": 3}', "not a string")])
def test_given_bad_file(tmp_path, content, match):
    f = tmp_path / "bad.json"
    f.write_text(content)
    with pytest.raises(GSCError, match=match):
        GivenCaptioner(captions=f)


def test_given_needs_exactly_one_source(tmp_path):
    with pytest.raises(GSCError, match="exactly one"):
        GivenCaptioner()
    with pytest.raises(GSCError, match="exactly one"):
        GivenCaptioner(caption="a", captions=tmp_path / "c.json")
    with pytest.raises(GSCError, match="not found"):
        GivenCaptioner(captions=tmp_path / "missing.json")


# --- Qwen2.5-VL, tiny and random ----------------------------------------------------------------------

def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([QwenCaptioner.PROMPT, "system user assistant You are a helpful assistant."], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")


def tiny_qwen(tokenizer):
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    ids = dict(zip(SPECIAL, tokenizer.convert_tokens_to_ids(SPECIAL)))
    special = dict(eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"], bos_token_id=None)
    config = Qwen2_5_VLConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=512,
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [1, 1, 2]},
                         **special),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                           patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                           fullatt_block_indexes=[1]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"], **special)
    torch.manual_seed(0)
    return Qwen2_5_VLForConditionalGeneration(config).eval()


@pytest.fixture(scope="module")
def qwen_parts():
    from transformers import Qwen2VLImageProcessorPil

    tokenizer = tiny_tokenizer()
    return tiny_qwen(tokenizer), tokenizer, Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112)


@pytest.fixture()
def image():
    return torch.rand(3, 70, 90, generator=torch.Generator().manual_seed(3))


def test_qwen_prompt_has_one_pad_per_merged_patch(qwen_parts, image):
    model, tokenizer, processor = qwen_parts
    cap = QwenCaptioner(model, tokenizer, processor, max_new_tokens=5)
    inputs = cap.inputs(image)
    ids = inputs["input_ids"][0].tolist()
    grid = inputs["image_grid_thw"][0]
    n_pads = ids.count(model.config.image_token_id)
    assert n_pads == int(grid.prod()) // 4 and n_pads > 1
    assert inputs["pixel_values"].shape[0] == int(grid.prod())
    assert ids.count(model.config.vision_start_token_id) == 1 and ids.count(model.config.vision_end_token_id) == 1
    assert QwenCaptioner.PROMPT in tokenizer.decode(ids)
    assert tokenizer.decode(ids).startswith("<|im_start|>system")   # no chat template: Qwen's own format


def test_qwen_uses_the_chat_template_when_present(qwen_parts, image):
    model, tokenizer, processor = qwen_parts
    tokenizer = tiny_tokenizer()
    tokenizer.chat_template = QWEN_TEMPLATE
    cap = QwenCaptioner(model, tokenizer, processor)
    text = tokenizer.decode(cap.inputs(image)["input_ids"][0])
    assert text.startswith("<|im_start|>user\n<|vision_start|><|image_pad|>")
    assert text.endswith(QwenCaptioner.PROMPT + "<|im_end|>\n<|im_start|>assistant\n")


def test_qwen_caption_is_the_models_greedy_continuation_and_sees_the_image(qwen_parts, image):
    model, tokenizer, _ = qwen_parts
    cap = QwenCaptioner(*qwen_parts, max_new_tokens=6)
    a, b = cap.caption(image, "x.png"), cap.caption(image, "x.png")
    assert a == b
    # Exactly the new tokens of greedy generation after the prompt, decoded, whitespace normalised.
    inputs = cap.inputs(image)
    out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1]:]
    assert 1 <= len(new) <= 6
    assert a == " ".join(tokenizer.decode(new, skip_special_tokens=True).split())
    # The pixels reach the model: another image of the same size changes its next-token distribution.
    other = torch.rand(3, 70, 90, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        logits = [model(**cap.inputs(x)).logits[0, -1] for x in (image, other)]
    assert not torch.allclose(logits[0], logits[1])


def test_qwen_max_new_tokens_caps_generation(qwen_parts, image):
    model, tokenizer, processor = qwen_parts
    cap = QwenCaptioner(model, tokenizer, processor, max_new_tokens=3)
    inputs = cap.inputs(image)
    out = model.generate(**inputs, max_new_tokens=cap.max_new_tokens, do_sample=False)
    assert out.shape[1] - inputs["input_ids"].shape[1] <= 3
    with pytest.raises(GSCError, match="max_new_tokens"):
        QwenCaptioner(model, tokenizer, processor, max_new_tokens=0)


def test_qwen_from_pretrained_folder_matches_in_memory(qwen_parts, image, tmp_path):
    model, tokenizer, processor = qwen_parts
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = CAPTIONERS.create("qwen2.5-vl", model=str(tmp_path), max_new_tokens=6, device="cpu")
    assert loaded.caption(image) == QwenCaptioner(model, tokenizer, processor, max_new_tokens=6).caption(image)


def test_qwen_missing_folder_is_a_gsc_error(tmp_path):
    with pytest.raises(GSCError, match="cannot load Qwen2.5-VL"):
        QwenCaptioner.from_pretrained(tmp_path / "nowhere", device="cpu")


def test_qwen_rejects_bad_image_shape(qwen_parts):
    with pytest.raises(GSCError, match=r"\(3, H, W\)"):
        QwenCaptioner(*qwen_parts).inputs(torch.rand(4, 32, 32))


# --- the lite receiver's caption embedding (all-MiniLM-L6-v2 without transformers' BERT) ---

EMBED_CAPTIONS = ["Two macaw parrots side by side, a blue and yellow macaw on the left, a red and green one "
                  "on the right.", "a red barn", "word " * 400, "Café naïve résumé — 東京"]


def test_caption_embedding_matches_transformers_bert():
    """The same vectors as the model card's recipe (AutoModel, mean pooling, L2), batch with padding and a
    caption over the 256-token limit included; an empty caption is the zero vector."""
    transformers = pytest.importorskip("transformers")
    from gsc.caption.embedding import MAX_TOKENS, CaptionEmbedder, _model_source

    ours = CaptionEmbedder()(["", *EMBED_CAPTIONS])
    assert ours.shape == (5, 384) and not ours[0].any()
    source = _model_source()
    tok, model = transformers.AutoTokenizer.from_pretrained(source), transformers.AutoModel.from_pretrained(source)
    with torch.no_grad():
        batch = tok(EMBED_CAPTIONS, return_tensors="pt", padding=True, truncation=True, max_length=MAX_TOKENS)
        hidden = model.eval()(**batch).last_hidden_state
        w = batch["attention_mask"][..., None].to(hidden)
        ref = torch.nn.functional.normalize((hidden * w).sum(1) / w.sum(1), dim=-1)
    assert torch.allclose(ours[1:], ref, atol=1e-5)
    # a caption embeds the same alone as in a padded batch
    assert torch.allclose(CaptionEmbedder()([EMBED_CAPTIONS[1]])[0], ours[2], atol=1e-5)


def test_caption_embedding_from_a_broken_folder_is_one_line(tmp_path):
    from gsc.caption.embedding import CaptionEmbedder

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(GSCError, match="cannot load the caption encoder"):
        CaptionEmbedder(str(tmp_path))
