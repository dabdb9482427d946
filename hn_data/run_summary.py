"""The summary a data command leaves in the folder it wrote: OUT/summary.json (indented, for a
reader) and the same summary as one JSON line on stdout (for a log or a calling script)."""
import json
from pathlib import Path


def write_summary(out, summary: dict, mark_complete: bool = False) -> dict:
    """-> summary, written to OUT/summary.json and printed. mark_complete also writes the
    OUT/.complete marker, after the summary, so a folder that has the marker has its summary."""
    out = Path(out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if mark_complete:
        (out / ".complete").write_text("ok\n")
    print(json.dumps(summary))
    return summary
