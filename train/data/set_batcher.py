"""Pack whole candidate sets into exactly N images per step.

Sets are never split across steps or ranks. From a look-ahead buffer the batcher takes, in
arrival order, every set that still fits. When no buffered set fits the remaining room r, the
oldest buffered set is *trimmed*: it keeps r of its images (chosen at random) and all of its
captions, so the dropped members' captions stay in the step as text-only hard negatives; the
dropped images are discarded, never carried into a later step. The number of trimmed sets is
counted and logged (`data/sets_trimmed`).

The packing decisions need only each set's image count, so the buffer holds cheap parsed
records and pixels are decoded only for the sets (and images) a step actually uses; a resumed
run replays its decisions without decoding anything (see steps.py)."""
from collections import Counter, deque

import torch

from ..losses import SetIndex, check_set_index
from ..text_trim import caption_lengths, text_len_of


def plan_steps(items, n_items: int, lookahead: int, rng, counters: Counter, size=len):
    """Yield lists of (item, keep) whose sizes add up to exactly n_items; keep is None (the
    whole set) or the sorted image indices a trimmed set keeps."""
    buf = deque()
    it = iter(items)
    lookahead = max(1, lookahead)

    def refill():
        # refilled before every pick, not once per step: a step may need more sets than the
        # look-ahead holds (small sets, large steps)
        while len(buf) < lookahead:
            try:
                buf.append(next(it))
            except StopIteration:
                return

    while True:
        refill()
        if not buf:
            return
        room, chosen = n_items, []
        while room > 0:
            refill()
            if not buf:
                break
            pick = next((i for i, s in enumerate(buf) if size(s) <= room), None)
            if pick is None:
                s = buf.popleft()
                keep = sorted(rng.choice(size(s), room, replace=False).tolist())
                counters["sets_trimmed"] += 1
                chosen.append((s, keep))
                room = 0
            else:
                s = buf[pick]
                del buf[pick]
                chosen.append((s, None))
                room -= size(s)
        if room > 0:  # the stream ended mid-step: drop the partial step
            return
        yield chosen


def pack_sets(sets_iter, n_items: int, lookahead: int, rng, counters: Counter):
    """Yield lists of decoded set dicts whose images add up to exactly n_items."""
    for plan in plan_steps(sets_iter, n_items, lookahead, rng, counters, size=lambda s: len(s["images"])):
        yield [s if keep is None else trim(s, keep) for s, keep in plan]


def trim(s, keep):
    return dict(s, images=[s["images"][i] for i in keep],
                image_caption=[s["image_caption"][i] for i in keep],
                img_keys=[s["img_keys"][i] for i in keep])


def collate_sets(sets, tokenizer):
    """Flatten packed sets into tensors with local index links (see train/losses.py)."""
    images, captions = [], []
    img_set, img_cap, img_key, cap_set, cap_img, cap_key, subsets = [], [], [], [], [], [], []
    for sid, s in enumerate(sets):
        c0, i0 = len(captions), len(images)
        captions.extend(s["captions"])
        cap_set.extend([sid] * len(s["captions"]))
        cap_key.extend(s["cap_keys"])
        links = [-1] * len(s["captions"])
        for j, (img, c) in enumerate(zip(s["images"], s["image_caption"])):
            images.append(img)
            img_set.append(sid)
            img_cap.append(c0 + c)
            img_key.append(s["img_keys"][j])
            links[c] = i0 + j
        cap_img.extend(links)
        subsets.append(s["subset"])
    long = lambda x: torch.tensor(x, dtype=torch.long)
    tokens = tokenizer(captions)
    # data.decode=cuda: the images are bytes for the training process to decode (a list)
    out = {"images": torch.stack(images) if images and torch.is_tensor(images[0]) else images,
           "tokens": tokens,
           "img_set": long(img_set), "img_cap": long(img_cap), "img_key": long(img_key),
           "cap_set": long(cap_set), "cap_img": long(cap_img), "cap_key": long(cap_key),
           "subsets": subsets,
           # host-side facts the training step would otherwise read back from the device
           "n_sets": len(sets), "text_len": text_len_of(tokens), "text_lens": caption_lengths(tokens)}
    # checked here, on the CPU in the loader worker, so the step can trust the index
    fields = ("img_set", "img_cap", "img_key", "cap_set", "cap_img", "cap_key")
    check_set_index(SetIndex(*(out[k] for k in fields)))
    return out
