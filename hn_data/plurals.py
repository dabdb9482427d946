"""The one pluraliser: the engine writes "two pairs of skis" with it and the evaluator's caption
parser reads plural class names with it, so that what one writes the other recognises.

Covers the 80 COCO classes (hn_data.coco) and the procedural library (hn_data.objects)."""
# Irregular or already-plural names; every other name takes "es" after s/x/ch/sh, else "s".
IRREGULAR = {"person": "people", "mouse": "mice", "knife": "knives", "sheep": "sheep",
             "skis": "pairs of skis", "scissors": "pairs of scissors",
             "tomato": "tomatoes", "leaf": "leaves"}


def plural(name: str) -> str:
    if name in IRREGULAR:
        return IRREGULAR[name]
    return name + ("es" if name.endswith(("s", "x", "ch", "sh")) else "s")
