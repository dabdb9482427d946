"""The 80 COCO classes SPEC's objects come from (used by the diffusion backend's prompts)."""
COCO_CLASSES = [
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush",
]
assert len(COCO_CLASSES) == 80

# Irregular or already-plural names; the rest take "s" / "es".
_PLURALS = {"person": "people", "bus": "buses", "skis": "pairs of skis", "knife": "knives",
            "sandwich": "sandwiches", "bench": "benches", "couch": "couches", "mouse": "mice",
            "wine glass": "wine glasses", "dining table": "dining tables", "toothbrush": "toothbrushes",
            "sheep": "sheep", "tv": "tvs", "scissors": "pairs of scissors", "cell phone": "cell phones",
            "potted plant": "potted plants", "hair drier": "hair driers", "teddy bear": "teddy bears",
            "hot dog": "hot dogs", "sports ball": "sports balls", "baseball bat": "baseball bats",
            "baseball glove": "baseball gloves", "tennis racket": "tennis rackets",
            "traffic light": "traffic lights", "fire hydrant": "fire hydrants", "stop sign": "stop signs",
            "parking meter": "parking meters", "box": "boxes", "tomato": "tomatoes", "leaf": "leaves"}


def coco_plural(name: str) -> str:
    if name in _PLURALS:
        return _PLURALS[name]
    return name + ("es" if name.endswith(("s", "x", "ch", "sh")) else "s")
