"""Learning rate as a pure function of the step."""
import math


def lr_at(step: int, peak: float, warmup: int, total: int, schedule: str = "cosine") -> float:
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    if schedule == "constant":
        return peak
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * peak * (1 + math.cos(math.pi * min(1.0, progress)))
