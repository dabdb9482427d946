"""data.decode=cuda: JPEGs decoded in batches on the GPU (torchvision.io.decode_jpeg on a list,
nvJPEG), then cropped, resized and normalised there; the loader hands over bytes.

The loader keeps every decision that makes a resumed run exact, on the CPU, in its worker:
  - which samples are skipped: the header is read (size over data.max_image_pixels, an image
    that does not open, a missing caption: skipped and counted, as in the other modes), but a
    JPEG's pixels are not decoded there. Replaying a stream makes the same header checks.
  - the random crop: drawn from the image size in the header, from the worker's per-step
    seeded generator, exactly as the PIL and tensor transforms draw it (the same boxes).
An image that is not a grey or colour JPEG (PNG, WebP, a CMYK JPEG) is decoded in the worker,
as data.decode=tensor does, and only cropped and resized on the GPU.

On the GPU a JPEG the batched decoder refuses is decoded alone, and one the GPU refuses alone
is decoded on the CPU (PIL) and counted (`data/device_decode_fallback`). One that PIL cannot
decode either, a file whose header was fine but whose data is damaged, is dropped from its
pair batch and counted as `undecodable_image` (the step then holds one pair fewer: the losses
take any count per rank); in a candidate set it is an error naming the set, as in the other
modes. Which images are dropped depends on the bytes only, so a resumed run drops the same.
The pixels are not bit-identical to the CPU decode's: nvJPEG's IDCT differs from
libjpeg-turbo's by a grey level or so (tests/test_perf_cuda.py bounds it)."""
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torchvision.transforms as T
from torchvision.io import ImageReadMode, decode_jpeg
from torchvision.transforms import v2

from .decode import open_image


@dataclass
class DeferredImage:
    """What the loader hands over for one image in data.decode=cuda."""
    data: Optional[bytes]            # a JPEG's bytes, decoded on the device
    pixels: Optional[torch.Tensor]   # or: uint8 [3, H, W] decoded in the worker (not a JPEG nvJPEG takes)
    box: Optional[tuple]             # (top, left, height, width) of the random crop, None without one
    source: str = ""                 # where it came from, for errors


def device_decodable(img) -> bool:
    """A header (PIL, nothing decoded) of a JPEG that the device decoder takes: grey or colour.
    CMYK and YCCK JPEGs go through PIL's colour conversion on the CPU instead."""
    return img.format == "JPEG" and img.mode in ("RGB", "L")


def split_steps(preprocess):
    """The model's transform as (random resized crop or None, the steps after it) in tensor
    form (train/data/jpeg.tensor_steps). The crop must come first: its box is drawn from the
    source size in the worker. ValueError otherwise, naming the step."""
    from .jpeg import tensor_steps
    steps = list(tensor_steps(preprocess).transforms)
    crop = steps.pop(0) if steps and isinstance(steps[0], v2.RandomResizedCrop) else None
    for s in steps:
        if isinstance(s, v2.RandomResizedCrop):
            raise ValueError(f"data.decode=cuda: the model's transform has a random crop after another "
                             f"step ({s!r}); its box cannot be drawn from the source size. "
                             f"Use data.decode=tensor")
    return crop, v2.Compose(steps)


class DeferredPreprocess:
    """The loader's per-image transform in data.decode=cuda: a header (or, for an image the
    device cannot decode, the decoded RGB image) and the bytes in, a DeferredImage out."""
    jpeg_route = "defer"  # train/data/decode.py: headers and bytes in

    def __init__(self, preprocess):
        self.crop, _ = split_steps(preprocess)

    def __call__(self, img, data: bytes, source: str = "") -> DeferredImage:
        box = None
        if self.crop is not None:
            # torchvision's own draw (the PIL and the v2 transform draw the same way), from
            # the header's size: the generator is the worker's, seeded per step
            box = tuple(T.RandomResizedCrop.get_params(img, list(self.crop.scale), list(self.crop.ratio)))
        if device_decodable(img):
            return DeferredImage(data=data, pixels=None, box=box, source=source)
        a = np.asarray(img.convert("RGB") if img.mode != "RGB" else img)
        return DeferredImage(data=None, pixels=torch.from_numpy(a.copy()).permute(2, 0, 1), box=box,
                             source=source)


class DeviceDecoder:
    """In the training process: a loader step whose images are DeferredImages -> the same step
    with image tensors on `device`. Counts go into the step's `skipped`."""

    def __init__(self, preprocess, device):
        self.crop, self.rest = split_steps(preprocess)
        self.device = torch.device(device)

    def __call__(self, step: dict) -> dict:
        parts = [k for k in ("pairs", "sets") if k in step and isinstance(step[k]["images"], list)]
        if not parts:
            return step
        items = [it for k in parts for it in step[k]["images"]]
        counts = {}
        images = self.decode(items, counts)
        out, at = dict(step), 0
        for k in parts:
            n = len(step[k]["images"])
            mine, at = images[at:at + n], at + n
            out[k] = self._pairs(step[k], mine, counts) if k == "pairs" else self._sets(step[k], mine)
        skipped = dict(step.get("skipped", {}))
        for reason, n in counts.items():
            skipped[reason] = skipped.get(reason, 0) + n
        out["skipped"] = skipped
        return out

    def decode(self, items, counts) -> list:
        """-> for each DeferredImage the transformed float tensor on the device, or None where
        neither the device nor the CPU can decode it."""
        pixels = [None if it.data is not None else it.pixels.to(self.device, non_blocking=True)
                  for it in items]
        jpegs = [i for i, it in enumerate(items) if it.data is not None]
        for i, x in zip(jpegs, self._decode_jpegs([items[i] for i in jpegs], counts)):
            pixels[i] = x
        return [None if x is None else self._transform(x, it.box) for x, it in zip(pixels, items)]

    def _decode_jpegs(self, items, counts):
        if not items:
            return []
        datas = [torch.frombuffer(bytearray(it.data), dtype=torch.uint8) for it in items]
        try:  # one batched call: nvJPEG decodes the whole step's images together
            return decode_jpeg(datas, mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError:  # some image in it refused: find which, one by one
            return [self._decode_one(d, it, counts) for d, it in zip(datas, items)]

    def _decode_one(self, data, item, counts):
        try:
            return decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)
        except RuntimeError:
            pass
        try:
            img = open_image(item.data)
        except Exception:  # noqa: BLE001 - counted by the caller as undecodable
            counts["undecodable_image"] = counts.get("undecodable_image", 0) + 1
            return None
        counts["device_decode_fallback"] = counts.get("device_decode_fallback", 0) + 1
        a = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
        return a.to(self.device, non_blocking=True)

    def _transform(self, x, box):
        if x.shape[0] == 1:  # a decoder that kept a grey image single-channel
            x = x.expand(3, -1, -1)
        if box is not None:
            x = v2.functional.resized_crop(x, *box, size=list(self.crop.size),
                                           interpolation=self.crop.interpolation, antialias=True)
        return self.rest(x)

    def _pairs(self, pairs, images, counts):
        keep = [i for i, x in enumerate(images) if x is not None]
        out = dict(pairs, images=torch.stack([images[i] for i in keep]))
        if len(keep) < len(images):
            from ..text_trim import caption_lengths, text_len_of
            out["tokens"] = pairs["tokens"][keep]
            out["text_lens"] = caption_lengths(out["tokens"])
            out["text_len"] = text_len_of(out["tokens"])
        return out

    def _sets(self, sets, images):
        for x, it in zip(images, sets["images"]):
            if x is None:
                raise ValueError(f"{it.source}: does not decode (neither on {self.device.type} nor on the "
                                 f"CPU); a set image that does not decode is a broken set shard")
        return dict(sets, images=torch.stack(images))


def decoder_for(mode: str, preprocess, device):
    """The training process's half of data.decode: a DeviceDecoder for cuda, else None."""
    return DeviceDecoder(preprocess, device) if mode == "cuda" else None
