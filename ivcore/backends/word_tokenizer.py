"""A word-level tokenizer built in code, for tiny T5 / UMT5 / Qwen text encoders offline.

The real tokenizers of the DiT video families (T5 for CogVideoX and LTX-Video, UMT5 for Wan,
Qwen2.5 for HunyuanVideo 1.5) are sentencepiece or BPE files nobody can download here. The tiny
test models only need something with the same interface: a `PreTrainedTokenizerFast` over a small
vocabulary, with pad and eos tokens set, saved with `save_pretrained` so that the family's
pipeline loads it from the folder like the real one.
"""

from __future__ import annotations

import string

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPECIALS = ("<pad>", "</s>", "<unk>")
WORDS = (
    "a an the of in on at to and with is are moves move runs run turns turn flies fly falls fall rises "
    "left right up down slowly fast camera pans zooms red green blue yellow white black orange purple "
    "circle square triangle fox cat dog bird car boat sun moon tree snow sky sea grass river mountain city "
    "man woman person walks walk dances jumps swims waves wind rain light dark big small still"
).split()

# t5-v1_1-xxl's kind of T5 encoder (gated GELU, untied head) at a tiny width, over this tokenizer's vocabulary:
# the text encoder of the tiny CogVideoX and LTX-Video models
TINY_T5_ENCODER = dict(
    vocab_size=128, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4, feed_forward_proj="gated-gelu",
    dropout_rate=0.0, layer_norm_epsilon=1e-6, tie_word_embeddings=False, pad_token_id=0, eos_token_id=1,
    decoder_start_token_id=0,
)  # fmt: skip


def word_tokenizer(vocab_size: int = 128, model_max_length: int = 512) -> PreTrainedTokenizerFast:
    """A lowercase word-level tokenizer: `<pad>` = 0, `</s>` = 1 (appended to every text), `<unk>` = 2.

    `vocab_size` is filled with common words, then letters and digits (so any text tokenizes, unknown
    words to `<unk>`); the text encoder's vocabulary must be at least as large.
    """
    vocab: dict[str, int] = {}
    for token in (*SPECIALS, *WORDS, *string.ascii_lowercase, *string.digits, *string.punctuation):
        if token not in vocab and len(vocab) < vocab_size:
            vocab[token] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    core.normalizer = normalizers.Lowercase()
    return PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        model_max_length=model_max_length, padding_side="right",
    )  # fmt: skip


__all__ = ["TINY_T5_ENCODER", "word_tokenizer"]
