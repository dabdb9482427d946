"""The `procedural` backend: no model weights. Stages 1+2 (object image -> cut-out with mask)
collapse into drawing a labelled shape whose alpha channel *is* the mask; stage 4 (background)
is a seeded procedural gradient, drawn once per set and shared by every member.

Assets: none are packaged; every pixel is drawn here (MIT, this repository)."""
import numpy as np

from . import objects
from .backgrounds import background as procedural_background
from .plurals import plural


class ProceduralBackend:
    name = "procedural"

    def __init__(self, classes=None):
        self.classes = list(classes or objects.CLASSES)
        unknown = [c for c in self.classes if c not in objects.CLASSES]
        if unknown:
            raise ValueError(f"procedural backend: no drawing for classes {unknown}; "
                             f"known: {sorted(objects.CLASSES)}")

    def cutout(self, name: str, side: int, instance: int):
        """RGBA, longer side == side; the instance id fixes its shade (same id, same object)."""
        return objects.cutout(name, side, np.random.default_rng(instance))

    def fill_ratio(self, name: str, instance: int) -> float:
        """Mask area / (longer side)^2, to aim a cut-out at a target area."""
        return objects.fill_ratio(name)

    def background(self, size: int, seed: int):
        return procedural_background(size, seed)

    def finish(self, scene, background, seed: int):
        """Hard-edged shapes need no seam blending: the composite is the final image."""
        return scene.image, scene.union_mask()

    def plural(self, name: str) -> str:
        return plural(name)
