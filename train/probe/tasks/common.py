"""What every probing task hands to the trainer: examples per split, in one shape."""
from dataclasses import dataclass, field
from typing import Dict, List

import torch

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    images: List[str]            # image paths (one per example; repeats are encoded once)
    texts: List[str]             # the statement / phrase the example is about
    keys: List[str]              # discrete id of the text side, for the `embed` text mode
    targets: torch.Tensor        # [N] float 0/1 (binary tasks) or [N, 4] xyxy in [0, 1] (boxes)
    categories: List[str]        # per-example category, for per-category scores
    area: List[float] = field(default_factory=list)      # box area / image area (boxes only)
    distance: List[float] = field(default_factory=list)  # box centre to image centre / half-diagonal

    def __len__(self):
        return len(self.images)

    def check(self, name: str):
        n = len(self.images)
        for attr in ("texts", "keys", "categories"):
            if len(getattr(self, attr)) != n:
                raise ValueError(f"{name}: {attr} has {len(getattr(self, attr))} entries for {n} images")
        if len(self.targets) != n:
            raise ValueError(f"{name}: {len(self.targets)} targets for {n} images")
        if n == 0:
            raise ValueError(f"{name}: no examples")


@dataclass
class Task:
    name: str                    # rcm | boxes | vsr
    kind: str                    # binary | box
    splits: Dict[str, Split]

    def check(self):
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise ValueError(f"task {self.name}: missing splits {missing}")
        for s in SPLITS:
            self.splits[s].check(f"task {self.name}/{s}")
        return self
