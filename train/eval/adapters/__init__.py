"""Scoring models other than open_clip, behind the evaluator contract (contract.py): each
adapter is a module with encode_image(pixels, normalize) and encode_text(tokens, normalize),
returned with its preprocess (PIL -> tensor) and tokenizer (list of str -> LongTensor of ids).

    --model hf:<repo id or local dir>       Hugging Face transformers CLIP, SigLIP, BLIP (ITC head)
                                            or FLAVA
    --model hf-itm:<repo id or local dir>   BLIP's image-text matching head (a cross-encoder:
                                            pair benchmarks)
    --model coca-caption:<open_clip CoCa name> [--pretrained TAG]
                                            CoCa's captioning score, log p(caption | image)
                                            (a cross-encoder: pair benchmarks)"""
from .coca import load_coca_caption
from .hf import load_hf

__all__ = ["load_coca_caption", "load_hf"]
