"""A local Hugging Face hub cache, filled the way huggingface_hub's own downloads fill it, so
open_clip's real download and load code runs with HF_HUB_OFFLINE=1 and no network."""
import hashlib
import json
from pathlib import Path

import open_clip
import torch
from open_clip.pretrained import get_pretrained_cfg

REVISION = "0" * 40  # the commit a snapshot is filed under; refs/main points at it


def put(hf_home: Path, repo_id: str, files: dict) -> Path:
    """Write {file name: bytes} as the snapshot of `repo_id` at main in HF_HOME's hub cache:
    blobs by content hash, snapshots/<rev>/<name> linking to them, refs/main naming <rev>."""
    repo = Path(hf_home) / "hub" / f"models--{repo_id.replace('/', '--')}"
    snap = repo / "snapshots" / REVISION
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(REVISION)
    for name, data in files.items():
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = snap / name
        link.unlink(missing_ok=True)
        link.symlink_to(Path("..") / ".." / "blobs" / blob.name)
    return snap


def tag_location(name: str, tag: str):
    """(repo id, file name) open_clip's download_pretrained() asks the hub for, for this tag:
    its hf_hub entry is 'org/repo/' (then the default file, safetensors first) or 'org/repo/file'."""
    hub = get_pretrained_cfg(name, tag)["hf_hub"]
    if hub.endswith("/"):
        repo_id, filename = hub.rstrip("/"), ""
    else:
        repo_id, _, filename = hub.rpartition("/")
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME
    return repo_id, filename or HF_SAFE_WEIGHTS_NAME


def random_weights(name: str, seed: int) -> dict:
    """A state dict of the architecture with weights no seed-0 initialisation reproduces."""
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)  # also moves the zero/one-initialised biases and gains
    return {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}


def safetensors_bytes(state: dict) -> bytes:
    from safetensors.torch import save
    return save(state)


def open_clip_repo_files(model_cfg: dict, state: dict, preprocess_cfg=None) -> dict:
    """What an open_clip model repository on the hub holds (as push_to_hf_hub writes it)."""
    config = {"model_cfg": model_cfg, "preprocess_cfg": preprocess_cfg or {}}
    return {"open_clip_config.json": json.dumps(config).encode(),
            "open_clip_model.safetensors": safetensors_bytes(state)}
