"""The candidate-set shard format: a webdataset tar where one sample is one set.

    KEY.json   {"subset": str, "captions": [str, ...],            # K_cap >= 2 captions
                "image_caption": [int, ...],                     # per image: its caption's index
                "objects": [str, ...], "meta": {...}}            # generator metadata
    KEY.0.png, KEY.1.png, ...   image k (PNG, JPEG or WebP: KEY.k.jpg, KEY.k.webp)

Captions not named by any image are text-only hard negatives (NegCLIP-style data)."""
import io
import json
import time
from pathlib import Path

from .tar_io import TarWriter


def validate_record(rec: dict, n_images: int, where: str):
    caps = rec.get("captions")
    links = rec.get("image_caption")
    if not isinstance(caps, list) or len(caps) < 2:
        raise ValueError(f"{where}: a candidate set needs at least 2 captions, got {caps!r}")
    if not isinstance(links, list) or len(links) != n_images or n_images < 1:
        raise ValueError(f"{where}: image_caption must list one caption index per image "
                         f"({n_images} images), got {links!r}")
    if any((not isinstance(i, int)) or i < 0 or i >= len(caps) for i in links):
        raise ValueError(f"{where}: caption index outside the set in image_caption={links}")
    if len(set(links)) != len(links):
        raise ValueError(f"{where}: two images point at the same caption {links}")
    if any(not isinstance(c, str) or not c.strip() for c in caps):
        raise ValueError(f"{where}: empty caption in {caps!r}")


def png_bytes(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def jpg_bytes(img, quality=95) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def write_set(writer: TarWriter, key: str, cs):
    """Write a generated set (images[k] pairs with captions[k]) as PNG members."""
    rec = {"subset": cs.subset, "captions": cs.captions,
           "image_caption": list(range(len(cs.images))), "objects": cs.objects, "meta": cs.meta}
    # the bytes the engine checked its labels on, when it kept them (hn_data.shipped)
    pngs = getattr(cs, "png", None) or [png_bytes(img) for img in cs.images]
    write_set_record(writer, key, rec, [(data, "png") for data in pngs])


def write_set_record(writer: TarWriter, key: str, rec: dict, images):
    """Write one set from a record and already-encoded images [(bytes, ext)], in image order.
    Converters use this to keep the source files' bytes (no re-encoding)."""
    if not key or "." in key or "/" in key:
        raise ValueError(f"set key {key!r}: must be non-empty without '.' or '/' (webdataset's key rule)")
    validate_record(rec, len(images), key)
    writer.add(f"{key}.json", json.dumps(rec).encode())
    for k, (data, ext) in enumerate(images):
        writer.add(f"{key}.{k}.{ext}", data)


def write_pair(writer: TarWriter, key: str, img, caption: str, extra=None):
    """img2dataset's layout: KEY.jpg, KEY.txt, KEY.json."""
    writer.add(f"{key}.jpg", jpg_bytes(img))
    writer.add(f"{key}.txt", caption.encode())
    meta = {"key": key, "caption": caption, "width": img.size[0], "height": img.size[1],
            "status": "success", "url": f"synthetic://{key}"}
    meta.update(extra or {})
    writer.add(f"{key}.json", json.dumps(meta).encode())


def write_stats(tar_path: Path, count: int, failed: int = 0):
    """img2dataset writes NNNNN_stats.json beside each shard."""
    stats = {"count": count + failed, "successes": count, "failed_to_download": failed,
             "failed_to_resize": 0, "start_time": time.time(), "status_dict": {"success": count}}
    Path(str(tar_path)[:-4] + "_stats.json").write_text(json.dumps(stats))
