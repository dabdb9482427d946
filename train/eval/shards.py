"""Read small evaluation webdatasets straight from tar files (no pipeline, no shuffling: an
evaluation must see the same samples in the same order every time). Samples are grouped by key
(the member name up to its first dot, as webdataset does). A missing or unreadable member skips
its sample and is counted; a missing shard is an error naming it."""
import io
import tarfile
from pathlib import Path

from braceexpand import braceexpand
from PIL import Image

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


def expand(urls):
    paths = [p for part in (urls if isinstance(urls, (list, tuple)) else str(urls).split("::"))
             for p in braceexpand(str(part))]
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"evaluation shard {p} does not exist")
    return paths


def read_samples(urls, needs):
    """-> (samples, skipped). samples: [{"__key__", ext: bytes}] holding every ext in `needs`
    ("image" stands for any of IMAGE_EXTS and yields a decoded RGB PIL image)."""
    samples, skipped = [], 0
    for path in expand(urls):
        groups = {}
        with tarfile.open(path) as tar:
            for m in tar:
                if not m.isfile():
                    continue
                key, _, ext = Path(m.name).name.partition(".")
                groups.setdefault(key, {})[ext.lower()] = tar.extractfile(m).read()
        for key, g in groups.items():
            s = {"__key__": f"{path}:{key}"}
            ok = True
            for want in needs:
                if want == "image":
                    data = next((g[e] for e in IMAGE_EXTS if e in g), None)
                    try:
                        s["image"] = Image.open(io.BytesIO(data)).convert("RGB") if data else None
                    except OSError:
                        s["image"] = None
                    ok &= s["image"] is not None
                else:
                    s[want] = g.get(want)
                    ok &= s[want] is not None
            if ok:
                samples.append(s)
            else:
                skipped += 1
    return samples, skipped
