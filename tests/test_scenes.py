"""hn_data.scenes, the one object-scene generator behind the default pairs, the reproduction's
data and the demo data: a seed gives the same image, `inside` keeps every object whole,
`overhanging` lets at most a quarter of a box leave the image, and captions name the objects."""
import numpy as np

from hn_data.objects import CLASSES
from hn_data.scenes import inside, names_caption, object_scene, overhanging


def test_same_seed_same_image():
    a, b = (object_scene(np.random.default_rng(3), ["kite", "box"], 64, 11).image for _ in range(2))
    assert a.tobytes() == b.tobytes()
    c = object_scene(np.random.default_rng(4), ["kite", "box"], 64, 11).image
    assert c.tobytes() != a.tobytes()


def test_inside_keeps_each_object_whole_and_overhang_is_bounded():
    rng = np.random.default_rng(0)
    for name in sorted(CLASSES):
        whole = object_scene(rng, [name], 64, 1, area=(0.05, 0.3), corners=inside).objects[0]
        assert whole.mask.sum() == whole.cut_area  # nothing of the cut-out is outside
    for side in (4, 16, 40):
        lo, hi = overhanging(side, 64)
        assert lo == -side // 4 and (hi - 1) + side - 64 <= side // 4  # the right/bottom overhang
        assert inside(side, 64) == (0, 64 - side + 1)


def test_caption_names_the_objects():
    assert names_caption(["kite"]) == "a photo of a kite"
    assert names_caption(["kite", "lemon"]) == "a photo of a kite and a lemon"
