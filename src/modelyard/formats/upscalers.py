"""Single-image super-resolution checkpoints (what spandrel loads), known by their tensor names:
ESRGAN in its old and new layouts (Real-ESRGAN, BSRGAN), Real-ESRGAN's compact net, SwinIR,
Swin2SR, HAT, DAT, SPAN, Real-CUGAN, OmniSR and PLKSR."""

from __future__ import annotations

from collections.abc import Collection

# (architecture, the names a checkpoint of it has), the more specific before the less
SIGNATURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("hat", ("conv_first.weight", "layers.0.residual_group.blocks.0.conv_block.cab.0.weight")),
    ("swin2sr", ("patch_embed.proj.weight", "layers.0.residual_group.blocks.0.attn.relative_position_index")),
    ("swinir", ("conv_first.weight", "layers.0.residual_group.blocks.0.attn.relative_position_index")),
    ("dat", ("conv_first.weight", "before_RG.1.weight", "layers.0.blocks.0.ffn.fc1.weight")),
    ("esrgan", ("model.0.weight", "model.1.sub.0.RDB1.conv1.0.weight")),
    ("esrgan", ("conv_first.weight", "body.0.rdb1.conv1.weight", "conv_body.weight", "conv_last.weight")),
    ("span", ("conv_1.sk.weight", "block_1.c1_r.sk.weight", "upsampler.0.weight")),
    ("realcugan", ("unet1.conv1.conv.0.weight", "unet1.conv_bottom.weight")),
    ("omnisr", ("input.weight", "up.0.weight", "residual_layer.0.residual_layer.0.layer.0.fn.0.weight")),
    ("plksr", ("feats.0.weight", "feats.1.lk.conv.weight")),
)


def upscaler_of(names: Collection[str]) -> str | None:
    """The architecture whose tensor names these are, or None."""
    keys = names if isinstance(names, (set, frozenset, dict)) else set(names)
    for architecture, needed in SIGNATURES:
        if all(n in keys for n in needed):
            return architecture
    if _compact(keys):
        return "compact"
    return None


def _compact(keys: Collection[str]) -> bool:
    """Real-ESRGAN's SRVGGNetCompact: nothing but body.N convolutions and activations."""
    return "body.0.weight" in keys and "body.1.weight" in keys and all(k.startswith("body.") for k in keys)
