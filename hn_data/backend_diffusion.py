"""The `diffusion` backend: SPEC's real stages through diffusers + transformers.

  1 object image  text-to-image ("a photo of a single and fully visible <class>"; SDXL in the
                  paper) - any diffusers text-to-image pipeline, by local path or hub id
  2 cut-out       an open-set detector (Grounding DINO in the paper; OWL-ViT works too) boxes
                  the class, a segmenter (SAM) turns the box into a mask; largest component,
                  holes filled, alpha = mask
  4 background    an inpainting pipeline fills the empty canvas *progressively*: first a
                  centre patch, then the surround conditioned on it. The result is drawn once
                  per set; each member pastes its objects on it and inpaints only a thin halo
                  around them to blend seams, so pixels outside the halo are the set's one
                  background, exactly.

Options (backend_options): t2i, inpaint (default: t2i), detector, segmenter (None: box masks),
classes (default: COCO's 80), prompt, background_prompts, steps, guidance_scale, gen_size,
box_threshold, min_mask_fraction, halo, device, dtype, threads, library_dir (cache cut-outs as PNG so
every worker and re-run reuses them), plumbing_only (marks outputs made with random weights).
Real weights are large; nothing here downloads unless a hub id is given and the hub is reachable.
"""
import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

from .backends import RejectedSample
from .coco import COCO_CLASSES
from .plurals import plural

BACKGROUND_PROMPTS = ["a photo of an empty grassy field", "a photo of an empty beach",
                      "a photo of an empty room",
                      "a photo of an empty street", "a photo of an empty table top",
                      "a photo of a snowy plain"]


class DiffusionBackend:
    name = "diffusion"

    def __init__(self, t2i, detector, segmenter=None, inpaint=None, classes=None,
                 prompt="a photo of a single and fully visible {}", background_prompts=None,
                 steps=30, guidance_scale=5.0, gen_size=1024, box_threshold=0.3, min_mask_fraction=0.05,
                 halo=4, device="cpu", dtype="float32", library_dir=None, plumbing_only=False, threads=None,
                 **unknown):
        if unknown:
            raise ValueError(f"diffusion backend: unknown options {sorted(unknown)}")
        import torch
        if threads:  # on a shared CPU, one thread per worker process beats oversubscription
            torch.set_num_threads(int(threads))
        try:
            import diffusers  # noqa: F401
            import transformers  # noqa: F401
        except ImportError as e:
            raise ImportError("the diffusion backend needs `pip install -e '.[diffusion]'` "
                              "(diffusers + transformers)") from e
        self.paths = {"t2i": t2i, "inpaint": inpaint or t2i, "detector": detector, "segmenter": segmenter}
        self.classes = list(classes or COCO_CLASSES)
        self.prompt, self.background_prompts = prompt, list(background_prompts or BACKGROUND_PROMPTS)
        self.steps, self.guidance_scale, self.gen_size = steps, guidance_scale, gen_size
        self.box_threshold, self.min_mask_fraction, self.halo = box_threshold, min_mask_fraction, halo
        self.device, self.dtype = device, dtype
        self.library_dir = Path(library_dir) if library_dir else None
        self.name = "diffusion(plumbing-only: random weights)" if plumbing_only else "diffusion"
        self._models, self._library = {}, {}

    # ---- model loading (lazy: a worker loads each model once) ----
    def _torch_dtype(self):
        import torch
        return getattr(torch, self.dtype)

    def _model(self, kind):
        if kind in self._models:
            return self._models[kind]
        if kind == "t2i":
            from diffusers import AutoPipelineForText2Image
            m = AutoPipelineForText2Image.from_pretrained(self.paths["t2i"], torch_dtype=self._torch_dtype())
            m = m.to(self.device)
            m.set_progress_bar_config(disable=True)
        elif kind == "inpaint":
            from diffusers import AutoPipelineForInpainting
            if self.paths["inpaint"] == self.paths["t2i"]:
                m = AutoPipelineForInpainting.from_pipe(self._model("t2i"))  # shares weights, no 2nd copy
            else:
                m = AutoPipelineForInpainting.from_pretrained(self.paths["inpaint"],
                                                              torch_dtype=self._torch_dtype())
                m = m.to(self.device)
            m.set_progress_bar_config(disable=True)
        elif kind == "detector":
            from transformers import AutoModelForZeroShotObjectDetection, AutoProcessor
            m = (AutoProcessor.from_pretrained(self.paths["detector"]),
                 AutoModelForZeroShotObjectDetection.from_pretrained(self.paths["detector"]).to(self.device).eval())
        elif kind == "segmenter":
            from transformers import SamModel, SamProcessor
            m = (SamProcessor.from_pretrained(self.paths["segmenter"]),
                 SamModel.from_pretrained(self.paths["segmenter"]).to(self.device).eval())
        else:
            raise KeyError(kind)
        self._models[kind] = m
        return m

    # ---- stage 1: one object per image ----
    def generate_object(self, name, instance):
        import torch
        g = torch.Generator("cpu").manual_seed(int(instance))
        return self._model("t2i")(self.prompt.format(name), num_inference_steps=self.steps,
                                  guidance_scale=self.guidance_scale, height=self.gen_size,
                                  width=self.gen_size,
                                  generator=g).images[0].convert("RGB")

    # ---- stage 2: detector box -> segmenter mask -> RGBA cut-out ----
    @staticmethod
    def _text_query(model, name):
        # Grounding DINO takes "cat." strings; OWL-ViT/OWLv2 take a list of queries per image
        return f"{name}." if "grounding" in model.config.model_type else [[f"a photo of a {name}"]]

    def detect(self, image, name):
        import torch
        proc, model = self._model("detector")
        inputs = proc(text=self._text_query(model, name), images=image, return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = model(**inputs)
        kw = {"threshold": self.box_threshold, "target_sizes": [image.size[::-1]]}
        if "grounding" in model.config.model_type:
            kw["input_ids"] = inputs["input_ids"]
        res = proc.post_process_grounded_object_detection(out, **kw)[0]
        w, h = image.size
        for i in res["scores"].argsort(descending=True).tolist():   # best box still on the image
            x0, y0, x1, y1 = res["boxes"][i].tolist()
            x0, y0 = max(0, int(x0)), max(0, int(y0))
            x1, y1 = min(w, int(np.ceil(x1))), min(h, int(np.ceil(y1)))
            if x1 - x0 >= 2 and y1 - y0 >= 2:
                return x0, y0, x1, y1
        return None

    def segment(self, image, box):
        x0, y0, x1, y1 = box
        mask = np.zeros(image.size[::-1], bool)
        if self.paths["segmenter"] is None:
            mask[y0:y1, x0:x1] = True
            return mask
        import torch
        proc, model = self._model("segmenter")
        inputs = proc(image, input_boxes=[[list(map(float, box))]], return_tensors="pt").to(self.device)
        with torch.no_grad():
            out = model(**inputs, multimask_output=False)
        m = proc.post_process_masks(out.pred_masks.cpu(), inputs["original_sizes"].cpu(),
                                    inputs["reshaped_input_sizes"].cpu())[0][0, 0].numpy().astype(bool)
        mask[y0:y1, x0:x1] = m[y0:y1, x0:x1]   # SAM may spill past its prompt box; the box is the object
        return _one_solid_component(mask)

    def _cut(self, name, instance):
        key = (name, int(instance))
        if key in self._library:
            if isinstance(self._library[key], str):   # rejected before: don't pay for it twice
                raise RejectedSample(self._library[key])
            return self._library[key]
        cached = self._cache_path(name, instance)
        if cached is not None and cached.exists():
            cut = Image.open(cached).convert("RGBA")
        else:
            image = self.generate_object(name, instance)
            box = self.detect(image, name)
            mask = None if box is None else self.segment(image, box)
            if box is None:
                self._library[key] = f"detector found no {name!r} (instance {instance})"
            elif mask.sum() < self.min_mask_fraction * (box[2] - box[0]) * (box[3] - box[1]):
                self._library[key] = f"segmenter mask of {name!r} too small (instance {instance})"
            if isinstance(self._library.get(key), str):
                raise RejectedSample(self._library[key])
            ys, xs = np.nonzero(mask)
            crop = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
            cut = image.crop(crop).convert("RGBA")
            cut.putalpha(Image.fromarray(mask[crop[1]:crop[3], crop[0]:crop[2]].astype(np.uint8) * 255))
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                tmp = cached.with_suffix(".tmp.png")
                cut.save(tmp)
                tmp.replace(cached)
        alpha = np.asarray(cut.split()[-1]) > 127
        self._library[key] = (cut, float(alpha.sum()) / max(cut.size) ** 2)
        return self._library[key]

    def _cache_path(self, name, instance):
        if self.library_dir is None:
            return None
        tag = hashlib.sha1(repr(sorted(self.paths.items())).encode()).hexdigest()[:8]
        return self.library_dir / tag / f"{name.replace(' ', '_')}-{int(instance)}.png"

    def cutout(self, name, side, instance):
        cut, _ = self._cut(name, instance)
        scale = side / max(cut.size)
        size = (max(1, round(cut.size[0] * scale)), max(1, round(cut.size[1] * scale)))
        rgb = cut.convert("RGB").resize(size, Image.LANCZOS)
        alpha = cut.split()[-1].resize(size, Image.BILINEAR)
        rgb.putalpha(alpha)
        return rgb

    def fill_ratio(self, name, instance):
        return self._cut(name, instance)[1]

    # ---- stage 4: one background per set, then per-member seam blending ----
    def _inpaint(self, image, mask, prompt, seed):
        import torch
        w, h = image.size
        g = torch.Generator("cpu").manual_seed(int(seed) % (1 << 63))
        out = self._model("inpaint")(prompt=prompt, image=image,
                                     mask_image=Image.fromarray(mask.astype(np.uint8) * 255),
                                     num_inference_steps=self.steps, guidance_scale=self.guidance_scale,
                                     height=_up8(h), width=_up8(w), strength=1.0, generator=g).images[0]
        return out.convert("RGB").resize((w, h), Image.LANCZOS)

    def background(self, size, seed):
        """Progressive fill: a centre patch first, then the surround around it (SPEC Fig. 4)."""
        prompt = self.background_prompts[int(seed) % len(self.background_prompts)]
        canvas = Image.new("RGB", (size, size), (127, 127, 127))
        centre = np.zeros((size, size), bool)
        q = size // 4
        centre[q:size - q, q:size - q] = True
        canvas = _merge(canvas, self._inpaint(canvas, centre, prompt, seed), centre)
        return _merge(canvas, self._inpaint(canvas, ~centre, prompt, seed + 1), ~centre)

    def finish(self, scene, background, seed):
        objects = scene.union_mask()
        if self.halo <= 0 or not objects.any():
            return scene.image, objects
        from scipy import ndimage
        region = ndimage.binary_dilation(objects, iterations=self.halo)
        ring = region & ~objects
        blended = self._inpaint(scene.image, ring,
                                self.prompt.format(" and ".join(o.name for o in scene.objects[:2])), seed)
        out = np.asarray(background).copy()
        out[ring] = np.asarray(blended)[ring]              # only the halo is repainted
        out[objects] = np.asarray(scene.image)[objects]    # objects stay exactly as measured
        return Image.fromarray(out), region

    def plural(self, name):
        return plural(name)


def _up8(n):
    return max(8, -(-n // 8) * 8)


def _merge(base, new, mask):
    a = np.asarray(base).copy()
    a[mask] = np.asarray(new)[mask]
    return Image.fromarray(a)


def _one_solid_component(mask):
    """The largest connected component with its holes filled: one object, one blob."""
    from scipy import ndimage
    lab, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = ndimage.sum(mask, lab, range(1, n + 1))
    return ndimage.binary_fill_holes(lab == (1 + int(np.argmax(sizes))))
