"""The model's image transform run on uint8 tensors instead of PIL images (data.decode=tensor;
data.decode=cuda runs the same steps on the GPU after decoding there: train/data/device_decode.py).

open_clip's train transform (RandomResizedCrop, bicubic, to RGB, ToTensor, Normalize) spends
most of a 224-px sample's time outside the JPEG decoder: PIL's bicubic resize, then ToTensor
and Normalize, each a pass over float pixels. The same steps on a uint8 CHW tensor
(torchvision.transforms.v2: the resize in torch's uint8 antialiasing kernel, one fused
cast+normalize) cost a fraction.

Grey and colour JPEGs are decoded by the same libjpeg-turbo as PIL's, but through
torchvision.io.decode_jpeg straight into a uint8 tensor (decode.py's "tensor" route): the same
pixels, without PIL's image object and the array copy after it. A JPEG that decoder refuses goes
to PIL, which decides as in data.decode=pil (a damaged body is skipped and counted); other
formats and CMYK JPEGs are PIL's throughout. The decision is made where the pil mode makes
it, in the loader's check of each sample, so a resumed run replays the same decisions.

The pixels after the resize are not bit-identical to PIL's: torch's and PIL's bicubic
antialias filters differ by about one grey level (tests/test_perf_jpeg.py measures it). The
random crop draws from torch's generator exactly as the PIL transform does, so the loader's
per-step seeding gives the same crops in both modes and a resumed run the same pixels as the
original.

Reduced-size decoding (libjpeg's DCT scaling, PIL's `draft`) is not used: it can only halve,
quarter or eighth the source, so for a 224-px crop it saves work from 448-px sources up, and
img2dataset writes 256 and 384 px."""
import numpy as np
import torch
import torchvision.transforms as T
from torchvision.transforms import v2

DECODERS = ("pil", "tensor", "cuda")


def _to_uint8_chw(img) -> torch.Tensor:
    """A PIL image (8-bit RGB after the loader's decode) as a uint8 [3, H, W] tensor, no copy
    of pixels beyond the one numpy makes."""
    a = np.asarray(img.convert("RGB") if img.mode != "RGB" else img)
    return torch.from_numpy(a.copy()).permute(2, 0, 1)


def _is_mode_step(t) -> bool:
    # open_clip 3.3 names them MaybeConvertMode / MaybeToTensor; older ones use a function
    name = getattr(t, "__name__", type(t).__name__)
    return name in ("MaybeConvertMode", "_convert_to_rgb", "convert_to_rgb")


def tensor_steps(preprocess):
    """The v2 steps equal to the PIL Compose `preprocess`, or ValueError naming the first step
    that has no known tensor twin (then use data.decode=pil)."""
    steps = []
    for t in getattr(preprocess, "transforms", [preprocess]):
        if isinstance(t, T.RandomResizedCrop):
            steps.append(v2.RandomResizedCrop(t.size, t.scale, t.ratio, t.interpolation, antialias=True))
        elif isinstance(t, T.Resize):
            steps.append(v2.Resize(t.size, t.interpolation, t.max_size, antialias=True))
        elif isinstance(t, T.CenterCrop):
            steps.append(v2.CenterCrop(t.size))
        elif _is_mode_step(t):
            continue  # the tensor is RGB already
        elif isinstance(t, T.ToTensor) or type(t).__name__ == "MaybeToTensor":
            steps.append(v2.ToDtype(torch.float32, scale=True))
        elif isinstance(t, T.Normalize):
            steps.append(v2.Normalize(t.mean, t.std))
        else:
            raise ValueError(f"data.decode=tensor: no tensor version of the model's transform step "
                             f"{t!r}; use data.decode=pil")
    return v2.Compose(steps)


class TensorPreprocess:
    """Callable like the model's PIL transform: a PIL image or the loader's uint8 [3, H, W]
    tensor (a JPEG decoded without PIL: train/data/decode.py's "tensor" route) in, normalised
    float tensor out."""
    jpeg_route = "tensor"

    def __init__(self, preprocess):
        self.steps = tensor_steps(preprocess)

    def __call__(self, img):
        return self.steps(img if isinstance(img, torch.Tensor) else _to_uint8_chw(img))


def for_decode(mode: str, preprocess):
    """The per-image transform the loader applies for data.decode=`mode`."""
    if mode == "pil":
        return preprocess
    if mode == "tensor":
        return TensorPreprocess(preprocess)
    if mode == "cuda":  # the loader's half; the GPU's is device_decode.DeviceDecoder
        from .device_decode import DeferredPreprocess
        return DeferredPreprocess(preprocess)
    raise ValueError(f"unknown data.decode '{mode}'; choose one of {DECODERS}")
