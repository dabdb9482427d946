"""A procedural object library: labelled cut-outs (RGBA + mask) drawn from shapes and colours.

Classes deliberately share colours and shapes (a red circle, a red square, a blue circle …) so
that recognising one needs both attributes: zero-shot accuracy is then not trivially 100%."""
import math

import numpy as np
from PIL import Image, ImageDraw

COLORS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
          "yellow": (230, 200, 30), "purple": (150, 60, 190)}
# name -> (shape, colour); names are single words so captions read naturally.
CLASSES = {
    "apple": ("circle", "red"), "tomato": ("diamond", "red"), "brick": ("square", "red"),
    "lime": ("circle", "green"), "leaf": ("triangle", "green"), "frog": ("cross", "green"),
    "ball": ("circle", "blue"), "box": ("square", "blue"), "kite": ("diamond", "blue"),
    "lemon": ("circle", "yellow"), "cheese": ("triangle", "yellow"), "star": ("cross", "yellow"),
    "grape": ("circle", "purple"), "gift": ("square", "purple"),
}
def cutout(name: str, size: int, rng: np.random.Generator, instance: int = 0) -> Image.Image:
    """An RGBA image of one object filling a size x size box; alpha is the mask. `instance`
    varies the shade slightly so two instances of a class are distinct objects."""
    shape, colour = CLASSES[name]
    base = np.array(COLORS[colour], dtype=float)
    shade = np.clip(base + rng.integers(-20, 21, 3), 0, 255).astype(int)
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    s = size - 1
    fill = tuple(int(v) for v in shade) + (255,)
    if shape == "circle":
        d.ellipse([0, 0, s, s], fill=fill)
    elif shape == "square":
        d.rectangle([0, 0, s, s], fill=fill)
    elif shape == "triangle":
        d.polygon([(s / 2, 0), (s, s), (0, s)], fill=fill)
    elif shape == "diamond":
        d.polygon([(s / 2, 0), (s, s / 2), (s / 2, s), (0, s / 2)], fill=fill)
    elif shape == "cross":
        t = max(1, size // 3)
        d.rectangle([(s - t) / 2, 0, (s + t) / 2, s], fill=fill)
        d.rectangle([0, (s - t) / 2, s, (s + t) / 2], fill=fill)
    return img


def fill_ratio(name: str) -> float:
    """Share of the bounding box the shape covers (to aim at a target area)."""
    return {"circle": math.pi / 4, "square": 1.0, "triangle": 0.5, "diamond": 0.5,
            "cross": 5 / 9}[CLASSES[name][0]]
