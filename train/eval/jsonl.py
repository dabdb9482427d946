"""JSON-lines benchmark files (VSR's splits, Winoground's examples.jsonl): one record a line."""
import json
from pathlib import Path


def jsonl_records(path, benchmark, required):
    """Yield (where, record) for each non-blank line; `where` ("<benchmark>: <path> line <n>")
    names the line for the caller's own errors. A missing file, a line that is not a JSON object,
    or a record without one of the `required` keys is an error naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{benchmark}: {path} does not exist")
    for n, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        where = f"{benchmark}: {path} line {n + 1}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where} is not JSON ({e})") from None
        if not isinstance(rec, dict):
            raise ValueError(f"{where} is not a JSON object")
        missing = [k for k in required if k not in rec]
        if missing:
            raise ValueError(f"{where} lacks {missing}")
        yield where, rec
