"""Tiny RANDOM-WEIGHT stand-ins for the diffusion backend's models, built from the libraries'
own config classes and saved in the layout real checkpoints use, so the backend's loading and
calling code runs end to end with no download. PLUMBING ONLY: the pictures are noise.

    python -m hn_data.tiny_diffusion out=/tmp/tiny_models
    -> t2i/ (an SDXL pipeline: UNet2DConditionModel, AutoencoderKL, two CLIP text encoders; also
       loaded as the inpainting pipeline), detector/ (OWL-ViT), segmenter/ (SAM)

Sizes follow diffusers' and transformers' own unit tests (a few hundred kB in total)."""
import json
from dataclasses import dataclass
from pathlib import Path

from .cli import command, setting


def write_clip_tokenizer(folder: Path, max_length=64):
    """A byte-level BPE vocabulary with no merges: every character is a token. Needs no hub."""
    from transformers import CLIPTokenizer
    # GPT-2/CLIP's byte -> printable-character table: printable Latin-1 maps to itself
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    chars = [chr(b) for b in keep] + [chr(256 + n) for n in range(256 - len(keep))]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    folder.mkdir(parents=True, exist_ok=True)
    tok = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)
    tok.save_pretrained(folder)
    return tok, len(vocab)


def build_t2i(folder: Path):
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    torch.manual_seed(0)
    tok, vocab = write_clip_tokenizer(folder / "_tok")
    tcfg = CLIPTextConfig(bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1,
                          hidden_size=32,
                          intermediate_size=37, num_attention_heads=4, num_hidden_layers=2, vocab_size=vocab,
                          max_position_embeddings=64, projection_dim=32, hidden_act="gelu")
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=8, transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=80, cross_attention_dim=64, norm_num_groups=1)
    vae = AutoencoderKL(block_out_channels=[8, 8], in_channels=3, out_channels=3, norm_num_groups=4,
                        down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                        latent_channels=4, sample_size=32)
    sched = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, steps_offset=1,
                                   beta_schedule="scaled_linear", timestep_spacing="leading")
    pipe = StableDiffusionXLPipeline(vae=vae, text_encoder=CLIPTextModel(tcfg), tokenizer=tok,
                                     text_encoder_2=CLIPTextModelWithProjection(tcfg), tokenizer_2=tok,
                                     unet=unet, scheduler=sched)
    pipe.save_pretrained(folder)


def build_detector(folder: Path):
    import torch
    from transformers import OwlViTConfig, OwlViTForObjectDetection, OwlViTImageProcessor, OwlViTProcessor
    torch.manual_seed(0)
    tok, vocab = write_clip_tokenizer(folder / "_tok")
    cfg = OwlViTConfig(
        text_config=dict(vocab_size=vocab, hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64, bos_token_id=vocab - 2,
                         eos_token_id=vocab - 1, pad_token_id=vocab - 1),
        vision_config=dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=32)
    OwlViTForObjectDetection(cfg).save_pretrained(folder)
    ip = OwlViTImageProcessor(size={"height": 32, "width": 32}, crop_size={"height": 32, "width": 32})
    OwlViTProcessor(image_processor=ip, tokenizer=tok).save_pretrained(folder)


def build_segmenter(folder: Path):
    import torch
    from transformers import (
        SamConfig,
        SamImageProcessor,
        SamMaskDecoderConfig,
        SamModel,
        SamProcessor,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )
    torch.manual_seed(0)
    cfg = SamConfig(
        vision_config=SamVisionConfig(hidden_size=16, output_channels=16, num_hidden_layers=1,
                                      num_attention_heads=2,
                                      image_size=64, patch_size=8, window_size=4, global_attn_indexes=[0],
                                      num_pos_feats=8, mlp_dim=32),
        prompt_encoder_config=SamPromptEncoderConfig(hidden_size=16, image_size=64, patch_size=8,
                                                     mask_input_channels=4),
        mask_decoder_config=SamMaskDecoderConfig(hidden_size=16, mlp_dim=32, num_hidden_layers=2,
                                                 num_attention_heads=2,
                                                 iou_head_hidden_dim=16))
    SamModel(cfg).save_pretrained(folder)
    ip = SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64},
                           mask_size={"longest_edge": 16}, mask_pad_size={"height": 16, "width": 16})
    SamProcessor(image_processor=ip).save_pretrained(folder)


def build_all(out) -> dict:
    """Build the three tiny checkpoints; return the diffusion backend's options for them."""
    out = Path(out)
    build_t2i(out / "t2i")
    build_detector(out / "detector")
    build_segmenter(out / "segmenter")
    return {"t2i": str(out / "t2i"), "inpaint": str(out / "t2i"), "detector": str(out / "detector"),
            "segmenter": str(out / "segmenter"), "steps": 2, "gen_size": 64, "box_threshold": 0.0,
            "plumbing_only": True}


@dataclass
class TinyDiffusionCommand:
    out: str = setting(help="folder for t2i/, detector/, segmenter/ (the run directory)")


def run(args: TinyDiffusionCommand) -> dict:
    options = build_all(args.out)
    print(json.dumps(options, indent=2))
    return options


main = command(TinyDiffusionCommand, run, prog="hnclip-tiny-diffusion", doc=__doc__, run_dir="${out}")


if __name__ == "__main__":
    main()
