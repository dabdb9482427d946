"""Read small evaluation webdatasets straight from tar files (no pipeline, no shuffling: an
evaluation must see the same samples in the same order every time). Samples are grouped by key
(hn_data.tar_io: webdataset's rule). A missing member or an undecodable image skips its sample
and is counted; a missing shard, or one whose tar structure is damaged (the benchmark is then
not as released), is an error naming it."""
import io

from PIL import Image

from hn_data.tar_io import IMAGE_EXTS, existing_files, expand as expand_urls, local_samples


def expand(urls):
    """Brace-expanded evaluation shards, each checked to exist."""
    return existing_files(expand_urls(urls), "evaluation shard")


def read_samples(urls, needs):
    """-> (samples, skipped). samples: [{"__key__", ext: bytes}] holding every ext in `needs`
    ("image" stands for any of IMAGE_EXTS and yields a decoded RGB PIL image)."""
    samples, skipped = [], 0
    for path in expand(urls):
        for key, g in local_samples(path):
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
