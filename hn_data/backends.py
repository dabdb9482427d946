"""Backend registry: `procedural` (default, no weights) or `diffusion` (diffusers + transformers).

A backend provides the engine's model-dependent stages:
  cutout(name, side, instance) -> RGBA   stages 1-2: one object, cut out (alpha = mask)
  fill_ratio(name, instance) -> float    mask area / (longer side)^2
  background(size, seed) -> RGB          stage 4a: the one background a whole set shares
  finish(scene, background, seed) -> (RGB, region)
                                         stage 4b: blend the pasted objects in; pixels outside
                                         `region` (bool HxW) must equal `background` exactly
  plural(name) -> str
Stage 3 (arrangement with the concept controlled) is backend-free: hn_data.concepts."""


class RejectedSample(Exception):
    """A stage could not produce a usable piece (no detection, empty mask): the set is
    rejected and counted like a failed measurement, never written."""


def make_backend(name: str = "procedural", **options):
    if name == "procedural":
        from .backend_procedural import ProceduralBackend
        return ProceduralBackend(**options)
    if name == "diffusion":
        from .backend_diffusion import DiffusionBackend
        return DiffusionBackend(**options)
    raise ValueError(f"unknown data-engine backend {name!r}: use 'procedural' or 'diffusion'")
