"""Tokenizers for a new model: trained from a corpus (SentencePiece with the `sentencepiece`
library, byte-level BPE with `tokenizers`) or taken from a library model, each saved with a
chat template. Runs in the export's environment (transformers)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

CHAT_TOKENS = ["<|im_start|>", "<|im_end|>"]
SPECIALS = ["<unk>", "<s>", "</s>", *CHAT_TOKENS]  # ids 0-4 in both kinds
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] "
    "+ '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
# for a pretrained tokenizer that has no template (and no chat tokens)
PLAIN = (
    "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
)


def train_sentencepiece(corpus: Path, vocab_size: int, folder: Path) -> Any:
    import sentencepiece
    from transformers import AddedToken, LlamaTokenizer

    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(folder / "tokenizer"),
        vocab_size=vocab_size,
        model_type="bpe",  # as Llama's: llama.cpp's SentencePiece tokenizer reads it exactly
        byte_fallback=True,
        hard_vocab_limit=False,  # a small corpus gives fewer pieces, not an error
        character_coverage=0.9995,
        user_defined_symbols=CHAT_TOKENS,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        input_sentence_size=2_000_000,
        shuffle_input_sentence=True,
        num_threads=os.cpu_count() or 1,
        minloglevel=2,
    )
    (folder / "tokenizer.vocab").unlink(missing_ok=True)
    tok = LlamaTokenizer.from_pretrained(str(folder))
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in CHAT_TOKENS], special_tokens=True)
    tok.chat_template = CHATML
    return tok


def train_bpe(corpus: Path, vocab_size: int) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train([str(corpus)], trainer)
    tok = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=core, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    tok.add_tokens(CHAT_TOKENS, special_tokens=True)
    tok.chat_template = CHATML
    return tok


def pretrained(source: Path, folder: Path) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(source))
    if not tok.chat_template:
        tok.chat_template = PLAIN
    if (source / "tokenizer.model").is_file():  # the SentencePiece model, for the GGUF's scores
        shutil.copyfile(source / "tokenizer.model", folder / "tokenizer.model")
    return tok


def end_ids(tok: Any) -> list[int]:
    """The ids that end an answer: the EOS token and, with a chat template, its turn end."""
    ids = [tok.eos_token_id] if tok.eos_token_id is not None else []
    turn_end = tok.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tok.get_vocab() else None
    if turn_end is not None and turn_end not in ids:
        ids.append(turn_end)
    if not ids and tok.sep_token_id is not None:
        ids.append(tok.sep_token_id)
    return ids
