"""Tiny models that transformers, sentence-transformers and peft really load: random weights from
small configs, tokenizers trained on a few sentences. Seeded, so every run builds the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "a cat sat on the mat and looked at the moon",
    "paris is the capital of france and a city of light",
    "machine learning models turn text into numbers",
    "hello world, how are you today?",
    "system user assistant: answer the question briefly.",
]
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def bpe_tokenizer(chat_template: str | None) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    if chat_template:
        fast.chat_template = chat_template
    return fast


def _llama_config(tokenizer: Any, hidden: int = 32) -> Any:
    """A 2-layer llama (4 heads, 2 KV heads) for the BPE tokenizer."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def write_chat_model(
    folder: Path, *, chat_template: str | None = CHATML, seed: int = 0, hidden: int = 32
) -> Path:
    """A 2-layer LlamaForCausalLM (hidden 32: head dim 8; vLLM's CPU kernels want 128: head dim
    32) with a byte-level BPE tokenizer and a ChatML template."""
    import torch
    from transformers import LlamaForCausalLM

    tokenizer = bpe_tokenizer(chat_template)
    config = _llama_config(tokenizer, hidden)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def write_quantized(folder: Path, base: Path, method: str = "gptq") -> Path:
    """``base`` quantized by gptqmodel in-process to 4 bits in groups of 32, on the CPU: GPTQ (its
    own format), or AWQ (GEMM) with the torch kernel. Calibrated on the corpus repeated."""
    import contextlib
    import os

    from modelyard.runners.standins import torchvision_stand_in

    # gptqmodel's CPU pool wants 2 workers for its loader; it defaults to half the cores
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")
    with torchvision_stand_in():
        from gptqmodel import BACKEND, GPTQModel, QuantizeConfig
        from gptqmodel.quantization.config import FORMAT, METHOD

    if method == "awq":
        config = QuantizeConfig(
            bits=4, group_size=32, quant_method=METHOD.AWQ, format=FORMAT.GEMM, offload_to_disk=False
        )
        backend = BACKEND.AWQ_TORCH
    else:
        config, backend = QuantizeConfig(bits=4, group_size=32, offload_to_disk=False), BACKEND.AUTO
    folder.mkdir(parents=True, exist_ok=True)
    with contextlib.chdir(folder.parent):  # gptqmodel writes its quantizing logs under ./logs
        model = GPTQModel.load(str(base), config, device="cpu")
        calibration = [" ".join(CORPUS[i:] + CORPUS[:i]) for i in range(len(CORPUS))] * 4
        model.quantize(calibration, batch_size=1, backend=backend)
        model.save(str(folder))
    return folder


def write_peft_lora(
    folder: Path, base: Path, *, seed: int = 1, targets: tuple[str, ...] = ("q_proj", "v_proj")
) -> Path:
    """A PEFT LoRA for ``base`` with random (not zero) B matrices, so that it changes the output."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=4, lora_alpha=16, target_modules=list(targets), init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 2.0)
    peft_model.save_pretrained(folder)
    return folder


def _wordpiece() -> Any:
    """A BERT tokenizer whose vocabulary is the corpus's words."""
    from transformers import BertTokenizer

    words = sorted({w.strip(",.?:") for line in CORPUS for w in line.split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    return BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})


def write_bert_classifier(folder: Path, labels: list[str], *, seed: int = 0) -> Path:
    """A 2-layer BertForSequenceClassification: one label is a cross-encoder (rerank)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    tokenizer = _wordpiece()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


def _clip_config(tokenizer: Any, *, layers: int) -> Any:
    """A CLIP text encoder's config (hidden 16, projection 16) for the BPE tokenizer."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        max_position_embeddings=16,
        projection_dim=16,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _tiny_clip(tokenizer: Any, *, layers: int) -> Any:
    """A CLIP-L style text encoder for the BPE tokenizer."""
    from transformers import CLIPTextModel

    return CLIPTextModel(_clip_config(tokenizer, layers=layers))


def _tiny_vae(**extra: Any) -> Any:
    """A two-block AutoencoderKL with 4 latent channels."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=(8, 16),
        latent_channels=4,
        norm_num_groups=4,
        sample_size=16,
        **extra,
    )


def _ddim() -> Any:
    """Stable Diffusion's DDIM schedule."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )


def write_tiny_sd(folder: Path, *, seed: int = 0) -> Path:
    """A diffusers StableDiffusionPipeline folder small enough to run in a test: 8x8 latents,
    a 2-layer CLIP text encoder with the byte-level BPE tokenizer."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        norm_num_groups=4,
        attention_head_dim=2,
    )
    vae = _tiny_vae()
    tokenizer = bpe_tokenizer(None)
    tokenizer.model_max_length = 16
    text_encoder = _tiny_clip(tokenizer, layers=2)
    scheduler = _ddim()
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return folder


def write_sd_lora(folder: Path, base: Path, name: str, *, seed: int = 3) -> Path:
    """A LoRA .safetensors for the tiny SD's UNet (random, not zero, so that it shows)."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    unet = UNet2DConditionModel.from_pretrained(base / "unet")
    unet.add_adapter(
        LoraConfig(
            r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False
        )
    )
    with torch.no_grad():
        for n, p in unet.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 1.0)
    state = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    folder.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(
        folder, unet_lora_layers=state, weight_name=f"{name}.safetensors"
    )
    return folder / f"{name}.safetensors"


LLAVA_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for p in m['content'] %}{% if p['type'] == 'image' %}<image>{% else %}{{ p['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def write_tiny_llava(folder: Path, *, seed: int = 0) -> Path:
    """A LlavaForConditionalGeneration: a 2-layer CLIP vision tower on 32x32 images (16 patches)
    and the tiny llama, with a processor whose chat template places <image>."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = bpe_tokenizer(LLAVA_TEMPLATE)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    vision = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    text = _llama_config(tokenizer)
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    LlavaForConditionalGeneration(config).save_pretrained(folder, safe_serialization=True)
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, which "default" drops again
        chat_template=LLAVA_TEMPLATE,
    )
    processor.save_pretrained(folder)
    return folder


def write_tiny_flux(folder: Path, *, seed: int = 0) -> Path:
    """A diffusers FluxPipeline folder: a one-block FLUX transformer, CLIP-L and T5 text encoders
    (text_encoder, text_encoder_2) with the BPE tokenizer, a small VAE."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tokenizer, tokenizer_2 = bpe_tokenizer(None), bpe_tokenizer(None)
    tokenizer.model_max_length = tokenizer_2.model_max_length = 16
    clip = _tiny_clip(tokenizer, layers=1)
    t5 = T5EncoderModel(
        T5Config(vocab_size=len(tokenizer_2), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2)
    )
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,
        num_layers=1,
        num_single_layers=1,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=16,
        axes_dims_rope=(2, 2, 4),
    )
    vae = _tiny_vae(use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.0, scaling_factor=1.0)
    FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=clip,
        tokenizer=tokenizer,
        text_encoder_2=t5,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    ).save_pretrained(folder)
    return folder


def write_tiny_wan(folder: Path, *, seed: int = 0) -> Path:
    """A diffusers WanPipeline (text-to-video) folder: a 2-layer Wan transformer, a small Wan VAE,
    a one-layer UMT5 text encoder with the BPE tokenizer."""
    import torch
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(seed)
    tokenizer = bpe_tokenizer(None)
    tokenizer.model_max_length = 16
    text_encoder = UMT5EncoderModel(
        UMT5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2)
    )
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=16,
        out_channels=16,
        text_dim=32,
        freq_dim=256,
        ffn_dim=32,
        num_layers=2,
        cross_attn_norm=True,
        qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32,
    )
    WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        transformer=transformer,
    ).save_pretrained(folder)
    return folder


def write_tiny_sdxl(folder: Path, *, seed: int = 0) -> Path:
    """A StableDiffusionXLPipeline folder: CLIP-L (text_encoder) and CLIP-G with its projection
    (text_encoder_2) feeding a UNet with SDXL's text-time embedding."""
    import torch
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(seed)
    tokenizer, tokenizer_2 = bpe_tokenizer(None), bpe_tokenizer(None)
    tokenizer.model_max_length = tokenizer_2.model_max_length = 16
    clip_g = CLIPTextModelWithProjection(_clip_config(tokenizer_2, layers=2))
    unet = UNet2DConditionModel(
        sample_size=8,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=64,  # 6 time ids x 8 + CLIP-G's pooled 16
        cross_attention_dim=32,  # CLIP-L's 16 + CLIP-G's 16
        norm_num_groups=4,
    )
    scheduler = _ddim()
    StableDiffusionXLPipeline(
        vae=_tiny_vae(),
        text_encoder=_tiny_clip(tokenizer, layers=2),
        text_encoder_2=clip_g,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=scheduler,
    ).save_pretrained(folder)
    return folder


def _byte_alphabet() -> list[str]:
    """GPT-2's 256 byte characters (printable first), the alphabet of Whisper's BPE."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    rest = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(rest))]


def write_tiny_whisper(folder: Path, *, seed: int = 0) -> Path:
    """A multilingual Whisper with Whisper's special tokens (languages, tasks, 1,501 timestamps)
    over a byte alphabet, two layers each side, alignment heads for word times."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    vocab = {c: i for i, c in enumerate(_byte_alphabet())}
    languages = [f"<|{code}|>" for code in LANGUAGES]
    specials = [
        "<|endoftext|>", "<|startoftranscript|>", *languages, "<|translate|>", "<|transcribe|>",
        "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>",
    ]  # fmt: skip
    stamps = [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    for token in specials + stamps:
        vocab[token] = len(vocab)
    tokenizer = WhisperTokenizer(
        vocab=vocab, merges=[], pad_token="<|endoftext|>", extra_special_tokens=specials[1:] + stamps
    )
    eot, sot = vocab["<|endoftext|>"], vocab["<|startoftranscript|>"]
    ids = {"decoder_start_token_id": sot, "pad_token_id": eot, "bos_token_id": eot, "eos_token_id": eot}
    suppress = {"suppress_tokens": [], "begin_suppress_tokens": [vocab["Ġ"], eot]}
    config = WhisperConfig(
        vocab_size=len(vocab), d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=128,
        decoder_ffn_dim=128, num_mel_bins=80, max_source_positions=1500, max_target_positions=448,
        **ids, **suppress,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        **ids, **suppress, max_length=448, is_multilingual=True,
        lang_to_id={t: vocab[t] for t in languages},
        task_to_id={"transcribe": vocab["<|transcribe|>"], "translate": vocab["<|translate|>"]},
        no_timestamps_token_id=vocab["<|notimestamps|>"], prev_sot_token_id=vocab["<|startofprev|>"],
        max_initial_timestamp_index=50, alignment_heads=[[1, 0], [1, 1]],
    )  # fmt: skip
    model.save_pretrained(folder)
    WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer
    ).save_pretrained(folder)
    return folder


def wav_bytes(seconds: float, rate: int = 16000, *, hz: float = 440.0) -> bytes:
    """A tone as a 16-bit WAV file."""
    import io

    import numpy as np
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * np.sin(2 * np.pi * hz * t) * np.sin(2 * np.pi * 0.5 * t)).astype(np.float32)
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def write_tiny_vits(folder: Path, *, speakers: int = 2, seed: int = 0) -> Path:
    """A VITS text-to-speech model (MMS-TTS's architecture) over a character vocabulary, with
    ``speakers`` voices, at 16 kHz."""
    import json

    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = list("_ abcdefghijklmnopqrstuvwxyz'.,?!")
    (folder / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(chars)}))
    tokenizer = VitsTokenizer(vocab_file=str(folder / "vocab.json"), add_blank=True, phonemize=False)
    config = VitsConfig(
        vocab_size=len(chars), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, ffn_dim=64,
        flow_size=32, spectrogram_bins=65, upsample_initial_channel=32, upsample_rates=[8, 8],
        upsample_kernel_sizes=[16, 16], resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]],
        prior_encoder_num_flows=2, prior_encoder_num_wavenet_layers=2,
        posterior_encoder_num_wavenet_layers=2, duration_predictor_filter_channels=32,
        num_speakers=speakers, speaker_embedding_size=16 if speakers > 1 else 0, sampling_rate=16000,
    )  # fmt: skip
    torch.manual_seed(seed)
    VitsModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


# Captioners: their text heads start wider than transformers' default (0.02), so that a random
# model's greedy caption is words of the vocabulary, not a run of special tokens.
WIDE = 0.5


def write_tiny_blip(folder: Path, *, seed: int = 0) -> Path:
    """A BlipForConditionalGeneration captioner: a 2-layer ViT on 32x32 images (16 patches) and a
    2-layer BERT decoder over the corpus's words."""
    import torch
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
        BlipTextConfig,
        BlipVisionConfig,
    )

    tokenizer = _wordpiece()
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    text = BlipTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, encoder_hidden_size=32, max_position_embeddings=64,
        bos_token_id=tokenizer.bos_token_id, pad_token_id=tokenizer.pad_token_id,
        sep_token_id=tokenizer.sep_token_id, initializer_range=WIDE,
    )  # fmt: skip
    vision = BlipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        image_size=32, patch_size=8, initializer_range=WIDE,
    )  # fmt: skip
    config = BlipConfig(
        text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=32, initializer_range=WIDE
    )
    torch.manual_seed(seed)
    BlipForConditionalGeneration(config).save_pretrained(folder)
    image = BlipImageProcessor(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def write_tiny_git(folder: Path, *, seed: int = 0) -> Path:
    """A GitForCausalLM captioner: a 2-layer CLIP vision tower on 32x32 images and a 2-layer
    BERT-style decoder."""
    import torch
    from transformers import CLIPImageProcessor, GitConfig, GitForCausalLM, GitProcessor

    tokenizer = _wordpiece()
    vision = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32,
        patch_size=8,
    )  # fmt: skip
    config = GitConfig(
        vision_config=vision, vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=64, initializer_range=WIDE,
        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(seed)
    GitForCausalLM(config).save_pretrained(folder)
    image = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    GitProcessor(image_processor=image, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def write_tiny_vit_gpt2(folder: Path, *, seed: int = 0) -> Path:
    """A VisionEncoderDecoderModel as nlpconnect's vit-gpt2-image-captioning is: a ViT encoder,
    a GPT-2 decoder with cross-attention, an image processor and the decoder's tokenizer (no
    processor)."""
    import torch
    from transformers import (
        GPT2Config,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    tokenizer = bpe_tokenizer(None)
    encoder = ViTConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32,
        patch_size=8,
    )  # fmt: skip
    decoder = GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=2, n_positions=64, initializer_range=WIDE,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, add_cross_attention=True,
        is_decoder=True,
    )  # fmt: skip
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id = tokenizer.bos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    config.eos_token_id = tokenizer.eos_token_id
    torch.manual_seed(seed)
    VisionEncoderDecoderModel(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_tiny_esrgan(path: Path, *, scale: int = 4, seed: int = 0, channels: int = 3) -> Path:
    """An ESRGAN (old layout: model.N, RRDB blocks) of 8 filters and one block, as spandrel
    builds it, saved as ``path`` (.safetensors, or a torch.save pickle for .pth)."""
    import torch

    from modelyard.runners.standins import torchvision_stand_in

    with torchvision_stand_in():
        from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(seed)
    state = ESRGAN(in_nc=channels, out_nc=channels, num_filters=8, num_blocks=1, scale=scale).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def write_tiny_face_pack(folder: Path, *, seed: int = 0) -> Path:
    """An insightface pack of two ONNX models shaped as buffalo_l's: a detector with SCRFD's nine
    outputs (scores, boxes, landmarks at strides 8, 16 and 32, two anchors a place) that finds
    each bright 64x64 square on a dark ground aligned to 32 pixels, and an ArcFace-shaped
    recognizer (112x112 crops in, 64 numbers out) with random weights."""
    import warnings

    import torch
    import torch.nn.functional as F
    from torch import nn

    class Detector(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            light = x.mean(dim=1, keepdim=True)  # -1 black .. 1 white, as insightface normalises
            marks = torch.tensor([0.6, 0.7, 1.4, 0.7, 1.0, 1.1, 0.7, 1.5, 1.3, 1.5])  # eyes, nose, mouth
            scores, boxes, points = [], [], []
            for stride in (8, 16, 32):
                if stride == 32:  # a 64x64 window from each place: bright all over is a face
                    window = F.avg_pool2d(F.pad(light, (0, 32, 0, 32), value=-1.0), 64, 32)
                    logit = 20 * (window - 0.5)
                else:
                    logit = F.avg_pool2d(light, stride, stride) * 0 - 10
                place = torch.sigmoid(logit).permute(0, 2, 3, 1).reshape(-1, 1)
                score = torch.cat([place, place * 0], 1).reshape(-1, 1)  # the second anchor never fires
                one = torch.ones_like(score)
                scores.append(score)
                boxes.append(torch.cat([one * 0, one * 0, one * 2, one * 2], 1))  # the window, in strides
                points.append(one * marks)
            return (*scores, *boxes, *points)

    class Recognizer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 8, 8)
            self.fc = nn.Linear(8 * 14 * 14, 64)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.relu(self.conv(x)).flatten(1))

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    names = [f"{kind}_{stride}" for kind in ("score", "bbox", "kps") for stride in (8, 16, 32)]
    with warnings.catch_warnings():  # the TorchScript exporter (the new one needs onnxscript) and its notes
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Detector(), (torch.zeros(1, 3, 640, 640),), str(folder / "det_tiny.onnx"), input_names=["input.1"],
            output_names=names, dynamic_axes={"input.1": {2: "height", 3: "width"}}, dynamo=False,
        )  # fmt: skip
        torch.onnx.export(
            Recognizer(), (torch.zeros(1, 3, 112, 112),), str(folder / "w600k_tiny.onnx"),
            input_names=["input.1"], output_names=["embedding"], dynamic_axes={"input.1": {0: "batch"}},
            dynamo=False,
        )  # fmt: skip
    return folder


def faces_picture(seed: int, places: list[tuple[int, int]], size: tuple[int, int] = (640, 640)) -> Any:
    """A dark picture with a bright textured 64x64 square (a face to the tiny detector) at each
    (x, y) of ``places`` (multiples of 32); 640x640, the detector's own size, so that it sees it unscaled."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 40, (size[1], size[0], 3), dtype=np.uint8)
    for x, y in places:
        pixels[y : y + 64, x : x + 64] = rng.integers(200, 256, (64, 64, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def write_tiny_piper(folder: Path, *, speakers: list[str] | None = None, seed: int = 0) -> Path:
    """A Piper voice (``voice.onnx`` and ``voice.onnx.json``) with Piper's inputs (phoneme ids,
    their count, the three scales, a speaker) and a waveform out: each phoneme id becomes 64
    samples of a learned shape, stretched by the length scale. The phoneme map covers ASCII and
    the IPA blocks espeak-ng writes, at 16 kHz."""
    import json
    import warnings

    import torch
    from torch import nn

    symbols = [
        chr(c) for c in [*range(32, 127), *range(0xE6, 0x100), *range(0x250, 0x370), *range(0x370, 0x400)]
    ]
    symbols = ["_", "^", "$", *[s for s in symbols if s not in "_^$"]]
    count = max(1, len(speakers or []))

    class Voice(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(len(symbols), 16)
            self.shape = nn.Linear(16, 64)
            self.speaker = nn.Embedding(count, 1)

        def forward(
            self,
            ids: torch.Tensor,
            lengths: torch.Tensor,
            scales: torch.Tensor,
            sid: torch.Tensor | None = None,
        ) -> torch.Tensor:
            wave = torch.tanh(self.shape(self.embed(ids))).reshape(1, -1) * 0.5
            if sid is not None:  # a voice of several speakers takes one
                wave = wave + self.speaker(sid) * 0.1
            n = (wave.shape[1] * scales[1]).long()
            at = (torch.arange(n).float() / scales[1]).long().clamp(max=wave.shape[1] - 1)
            return wave[:, at].unsqueeze(1) + lengths.float().sum() * 0

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    args: tuple[torch.Tensor, ...] = (
        torch.zeros(1, 5, dtype=torch.long),
        torch.tensor([5]),
        torch.tensor([0.667, 1.0, 0.8]),
    )
    names = ["input", "input_lengths", "scales"]
    if speakers:
        args, names = (*args, torch.tensor([0])), [*names, "sid"]
    with warnings.catch_warnings():  # the TorchScript exporter (the new one needs onnxscript) and its notes
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Voice(), args, str(folder / "voice.onnx"), input_names=names,
            output_names=["output"], dynamic_axes={"input": {1: "phonemes"}, "output": {2: "samples"}}, dynamo=False,
        )  # fmt: skip
    config = {
        "audio": {"sample_rate": 16000, "quality": "x_low"},
        "espeak": {"voice": "en-us"},
        "inference": {"noise_scale": 0.667, "length_scale": 1.0, "noise_w": 0.8},
        "phoneme_type": "espeak",
        "phoneme_id_map": {s: [i] for i, s in enumerate(symbols)},
        "num_symbols": len(symbols),
        "num_speakers": count,
        "speaker_id_map": {name: i for i, name in enumerate(speakers or [])},
        "piper_version": "1.0.0",
    }
    (folder / "voice.onnx.json").write_text(json.dumps(config, ensure_ascii=False))
    return folder
