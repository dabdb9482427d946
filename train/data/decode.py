"""Turn raw tar samples into model inputs: decode, the model's own preprocessing, content ids.
Bad pairs are skipped and counted; a malformed candidate set is an error naming its shard."""
import hashlib
import io
import json

from PIL import Image

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


def content_id(data: bytes) -> int:
    """63-bit id of some bytes: identical captions/images get the same id."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") >> 1


def open_image(data: bytes) -> Image.Image:
    img = Image.open(io.BytesIO(data))
    img.load()
    return img.convert("RGB")


def check_pair(sample, counters):
    """-> (PIL image, caption str) or None (counted). Everything that can make a pair be
    skipped happens here, so a resumed run that replays its stream can call only this (no
    preprocessing, no tokenization) and still skip exactly the same samples."""
    ext = next((e for e in IMAGE_EXTS if e in sample), None)
    if ext is None or "txt" not in sample:
        counters["incomplete_sample"] += 1
        return None
    caption = sample["txt"].decode("utf-8", errors="replace").strip()
    if not caption:
        counters["empty_caption"] += 1
        return None
    try:
        image = open_image(sample[ext])
    except Exception:
        counters["undecodable_image"] += 1
        return None
    return image, caption


def decode_pair(sample, preprocess, counters):
    """-> (image tensor, caption str) or None (counted)."""
    out = check_pair(sample, counters)
    return None if out is None else (preprocess(out[0]), out[1])


def parse_set(sample):
    """-> (record, ordered image member names), validated; an error names shard and key.
    Cheap (no image decoding): a resumed run replays its set stream with this alone."""
    from hn_data.set_format import validate_record
    where = f"{sample.get('__url__', '?')}: set '{sample.get('__key__', '?')}'"
    if "json" not in sample:
        raise ValueError(f"{where}: no .json member")
    try:
        rec = json.loads(sample["json"])
    except ValueError as e:
        raise ValueError(f"{where}: .json does not parse ({e})") from None
    keys = sorted((k for k in sample if k.split(".")[-1] in IMAGE_EXTS and k.split(".")[0].isdigit()),
                  key=lambda k: int(k.split(".")[0]))
    validate_record(rec, len(keys), where)
    return rec, keys, where


def decode_set(sample, preprocess, keep=None):
    """-> dict(images [k tensors], captions, image_caption, img_keys, cap_keys, subset).
    keep: the image indices a trimmed set keeps (None = all); the others are never decoded.
    A set image that does not decode is an error, not a skip: the set format is ours, so a
    broken set shard means a broken converter, which should be fixed, not trained around."""
    rec, keys, where = parse_set(sample)
    keep = range(len(keys)) if keep is None else keep
    images = []
    for i in keep:
        try:
            images.append(preprocess(open_image(sample[keys[i]])))
        except Exception as e:
            raise ValueError(f"{where}: image {keys[i]} does not decode ({e})") from e
    return {"images": images, "captions": rec["captions"],
            "image_caption": [rec["image_caption"][i] for i in keep],
            "img_keys": [content_id(sample[keys[i]]) for i in keep],
            "cap_keys": [content_id(c.encode()) for c in rec["captions"]],
            "subset": rec.get("subset", "")}
