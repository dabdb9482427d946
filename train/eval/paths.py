"""Paths named inside benchmark files. An annotation file says where its images are relative
to an image root; one that says `../../home/me/.ssh/id_rsa` or `/etc/shadow` would make the
evaluator read (and, in the example tables, show) files outside the data the user pointed at.
Such a path is refused with the file and item named, unless the suite sets
`allow_outside_root: true` (a file the user wrote and trusts)."""
from pathlib import Path, PurePosixPath


def inside(root, rel, where, allow_outside=False) -> str:
    """root / rel as a string, refusing a rel that is absolute or climbs out of root."""
    rel = str(rel)
    if not allow_outside:
        parts = PurePosixPath(rel.replace("\\", "/")).parts
        if not rel or Path(rel).is_absolute() or rel.startswith(("/", "\\")) or ".." in parts:
            raise ValueError(f"{where}: path {rel!r} leaves the image root {root} (absolute or '..'); "
                             "set the suite's allow_outside_root: true if you trust this file")
    return str(Path(root) / rel)
