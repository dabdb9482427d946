"""Read raw samples out of tar shards (local paths, pipe: URLs, anything webdataset's gopen
opens), skipping corrupt members and counting what was skipped.

We read the tar stream ourselves instead of through webdataset's handler chain because its
handlers cannot tell "this shard cannot be opened at all" (a user error: wrong path, broken
pipe command, not a tar) from "this shard is damaged half-way" (normal in real crawls). The
first is an error naming the shard unless the user opted into skipping; the second is counted:

  corrupt_member   a damaged member header (PAX extended headers included): the reader
                   resyncs on the next valid header (hn_data.tar_io), and the sample that
                   lost a member is then counted again by the decoder
  truncated_shard  the shard ends mid-member (its remaining samples are lost)
  unreadable_shard a shard that could not be opened/read, with data.skip_missing_shards=true
"""
from collections import Counter

from webdataset.gopen import gopen

from hn_data.tar_io import NotATar, Truncated, group_samples, tar_members

MAX_BARREN_SHARDS = 1000


class ShardReadError(RuntimeError):
    pass


def _members(url: str, counters: Counter, strict_open: bool):
    """Yield (name, bytes) of the regular files in one shard."""
    try:
        stream = gopen(url, "rb")
    except Exception as e:
        yield from _unreadable(url, e, counters, strict_open)
        return
    read_any = False
    try:
        try:
            for name, data in tar_members(stream, lambda: counters.update(["corrupt_member"])):
                read_any = True
                yield name, data
        except NotATar as e:
            yield from _unreadable(url, e, counters, strict_open)
        except (Truncated, OSError) as e:
            if not read_any and strict_open:
                raise ShardReadError(f"cannot read shard {url}: {e}") from e
            counters["truncated_shard" if read_any else "unreadable_shard"] += 1
    finally:
        try:
            stream.close()  # a pipe: URL reports its exit status here
        except Exception as e:
            if strict_open:
                raise ShardReadError(f"cannot read shard {url}: {e}") from e
            counters["unreadable_shard"] += 1


def _unreadable(url, e, counters, strict_open):
    if strict_open:
        raise ShardReadError(f"cannot read shard {url}: {e} "
                             f"(set data.skip_missing_shards=true to train without it)") from e
    counters["unreadable_shard"] += 1
    return
    yield  # a generator that yields nothing


def raw_samples(shard_urls, counters: Counter, strict_open: bool = True):
    """Yield dicts {__key__, __url__, ext: bytes} from an iterable of shard URLs: consecutive
    members sharing a key form one sample (webdataset's grouping rule)."""
    barren = [0]  # shards in a row that gave nothing: stop an endless stream of skipped shards

    def read_any(members):
        for member in members:
            barren[0] = 0
            yield member

    for url in shard_urls:
        barren[0] += 1
        if barren[0] > MAX_BARREN_SHARDS:
            raise ShardReadError(f"no sample in the last {MAX_BARREN_SHARDS} shards read "
                                 f"(last: {url}); are the shards empty or all unreadable?")
        # a duplicated member: the first is kept, the rest counted
        for key, sample in group_samples(read_any(_members(url, counters, strict_open)),
                                         lambda: counters.update(["duplicate_member"])):
            yield {"__key__": key, "__url__": url, **sample}


def shuffled(iterable, buffer: int, rng):
    """Reservoir-style shuffle buffer driven by an explicit RNG (deterministic per worker)."""
    if buffer <= 1:
        yield from iterable
        return
    buf = []
    for x in iterable:
        buf.append(x)
        if len(buf) >= buffer:
            i = int(rng.integers(len(buf)))
            buf[i], buf[-1] = buf[-1], buf[i]
            yield buf.pop()
    while buf:
        i = int(rng.integers(len(buf)))
        buf[i], buf[-1] = buf[-1], buf[i]
        yield buf.pop()
