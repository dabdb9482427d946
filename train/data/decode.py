"""Turn raw tar samples into model inputs: decode, the model's own preprocessing, content ids.
Bad pairs are skipped and counted; so is a candidate set that a damaged shard left incomplete
or that holds an oversized image. A malformed set record is an error naming its shard."""
import hashlib
import io
import json
import warnings

from PIL import Image

from hn_data.tar_io import IMAGE_EXTS

from .image_modes import to_rgb


def content_id(data: bytes) -> int:
    """63-bit id of some bytes: identical captions/images get the same id."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


# data.max_image_pixels' default: 5000 x 5000. A bigger image costs more to decode than a
# whole step of ordinary ones (a 12,000^2 PNG: 1 GB and seconds) and is skipped, counted.
MAX_IMAGE_PIXELS = 25_000_000


class ImageTooLarge(ValueError):
    pass


class BadSet(ValueError):
    """A candidate set to skip and count (the reason is the counter's name): what a damaged
    shard does to a set, as opposed to a malformed record, which is a converter's bug."""


def open_header(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Image.open (the header only, no pixel decoded yet), ImageTooLarge over max_pixels."""
    with warnings.catch_warnings():
        # the limit is max_pixels; Pillow's decompression-bomb warning would only repeat it
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as e:  # Pillow's hard cap, far above any sane limit
            raise ImageTooLarge(str(e)) from None
    w, h = img.size
    if w * h > max_pixels:
        raise ImageTooLarge(f"{w}x{h} = {w * h} pixels, over data.max_image_pixels={max_pixels}")
    return img


def open_image(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """-> 8-bit RGB (image_modes.to_rgb). The size is checked from the header first, so an
    image over max_pixels raises ImageTooLarge without costing its decode."""
    img = open_header(data, max_pixels)
    img.load()
    return to_rgb(img)


# How a loader's images are opened, named by its transform's `jpeg_route` attribute:
#   pil     PIL decodes every image (data.decode=pil; the model's own transform, no attribute)
#   tensor  libjpeg-turbo through torchvision.io.decode_jpeg for grey and colour JPEGs, into a
#           uint8 [3, H, W] tensor with no PIL image in between; PIL for the rest and for any
#           JPEG that decoder refuses (data.decode=tensor)
#   defer   the header alone of a grey or colour JPEG: the GPU decodes it (data.decode=cuda);
#           the transform then takes the header, the bytes and where they came from
JPEG_ROUTES = ("pil", "tensor", "defer")


def open_for(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS, route: str = "pil"):
    """open_image, or by `route` (above) a uint8 tensor or a JPEG's header alone."""
    if route != "pil":
        from .device_decode import device_decodable
        img = open_header(data, max_pixels)
        if device_decodable(img):
            if route == "defer":
                return img
            decoded = _decode_jpeg_cpu(data)
            if decoded is not None:
                return decoded
    return open_image(data, max_pixels)


def _decode_jpeg_cpu(data: bytes):
    """A grey or colour JPEG -> uint8 [3, H, W] (the same libjpeg-turbo pixels as PIL's), or
    None when the decoder refuses it (then PIL decides, so a damaged body is still skipped)."""
    import torch
    from torchvision.io import ImageReadMode, decode_jpeg
    try:
        return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except RuntimeError:
        return None


def jpeg_route(preprocess) -> str:
    """The route (above) a loader transform asks for."""
    route = getattr(preprocess, "jpeg_route", "pil")
    if route not in JPEG_ROUTES:
        raise ValueError(f"unknown jpeg_route {route!r} of {preprocess!r}; one of {JPEG_ROUTES}")
    return route


def check_pair(sample, counters, max_pixels: int = MAX_IMAGE_PIXELS, route: str = "pil"):
    """-> (image: PIL, uint8 tensor or header by `route`, caption str) or None (counted).
    Everything that can make a pair be skipped happens here, so a resumed run that replays its
    stream can call only this (no preprocessing, no tokenization) and still skip exactly the
    same samples."""
    ext = next((e for e in IMAGE_EXTS if e in sample), None)
    if ext is None or "txt" not in sample:
        counters["incomplete_sample"] += 1
        return None
    try:
        # strict: a caption with invalid bytes is damaged or mis-encoded text, and replacing
        # them would train on a caption nobody wrote ("utf-8-sig" drops a leading BOM)
        caption = sample["txt"].decode("utf-8-sig").strip()
    except UnicodeDecodeError:
        counters["non_utf8_caption"] += 1
        return None
    if not caption:
        counters["empty_caption"] += 1
        return None
    try:
        image = open_for(sample[ext], max_pixels, route)
    except ImageTooLarge:
        counters["oversized_image"] += 1
        return None
    except Exception:
        counters["undecodable_image"] += 1
        return None
    return image, caption


def decode_pair(sample, preprocess, counters, max_pixels: int = MAX_IMAGE_PIXELS):
    """-> (image tensor, caption str) or None (counted); with data.decode=cuda the image is a
    DeferredImage for the training process to decode."""
    route = jpeg_route(preprocess)
    out = check_pair(sample, counters, max_pixels, route)
    if out is None:
        return None
    if route != "defer":
        return preprocess(out[0]), out[1]
    ext = next(e for e in IMAGE_EXTS if e in sample)
    where = f"{sample.get('__url__', '?')}: sample '{sample.get('__key__', '?')}'"
    return preprocess(out[0], sample[ext], where), out[1]


def parse_set(sample, max_pixels: int = MAX_IMAGE_PIXELS):
    """-> (record, ordered image member names, where), validated; a malformed record is an
    error naming shard and key, a set a damaged shard left incomplete raises BadSet.
    Cheap (image headers only, no pixels): a resumed run replays its set stream with this."""
    from hn_data.set_format import validate_record
    where = f"{sample.get('__url__', '?')}: set '{sample.get('__key__', '?')}'"
    if "json" not in sample:
        raise BadSet("incomplete_set")  # its .json member was lost (a damaged header)
    try:
        rec = json.loads(sample["json"])
    except ValueError as e:
        raise ValueError(f"{where}: .json does not parse ({e})") from None
    members = {}
    for k in sample:
        index, _, ext = k.partition(".")
        if ext in IMAGE_EXTS and index.isdigit():
            members.setdefault(int(index), []).append(k)
    links = rec.get("image_caption") if isinstance(rec, dict) else None
    if isinstance(links, list) and sorted(members) != list(range(len(links))):
        # image k pairs with caption image_caption[k]: with a member missing, sorting the rest
        # would pair them with the wrong captions
        raise BadSet("incomplete_set")
    if any(len(v) > 1 for v in members.values()):  # e.g. both 1.png and 1.jpg
        raise BadSet("incomplete_set")
    keys = [members[i][0] for i in sorted(members)]
    validate_record(rec, len(keys), where)
    for k in keys:
        try:
            open_header(sample[k], max_pixels)
        except ImageTooLarge:
            raise BadSet("oversized_image") from None
        except Exception as e:
            raise ValueError(f"{where}: image {k} does not decode ({e})") from e
    return rec, keys, where


def set_sizes(raw, counters, max_pixels: int = MAX_IMAGE_PIXELS):
    """Yield (sample, number of images) of the sets that parse; the others are counted."""
    for sample in raw:
        try:
            yield sample, len(parse_set(sample, max_pixels)[1])
        except BadSet as e:
            counters[str(e)] += 1


def decode_set(sample, preprocess, keep=None, max_pixels: int = MAX_IMAGE_PIXELS):
    """-> dict(images [k tensors], captions, image_caption, img_keys, cap_keys, subset).
    keep: the image indices a trimmed set keeps (None = all); the others are never decoded.
    A set image that does not decode is an error, not a skip: the set format is ours, so a
    broken set shard means a broken converter, which should be fixed, not trained around."""
    rec, keys, where = parse_set(sample, max_pixels)
    keep = range(len(keys)) if keep is None else keep
    images, route = [], jpeg_route(preprocess)
    defer = route == "defer"
    for i in keep:
        try:
            img = open_for(sample[keys[i]], max_pixels, route)
            images.append(preprocess(img, sample[keys[i]], f"{where}: image {keys[i]}") if defer
                          else preprocess(img))
        except Exception as e:
            raise ValueError(f"{where}: image {keys[i]} does not decode ({e})") from e
    return {"images": images, "captions": rec["captions"],
            "image_caption": [rec["image_caption"][i] for i in keep],
            "img_keys": [content_id(sample[keys[i]]) for i in keep],
            "cap_keys": [content_id(c.encode()) for c in rec["captions"]],
            "subset": rec.get("subset", "")}
