"""One pluraliser for the engine and the evaluator: every class name of both vocabularies has
one plural, and the evaluator's caption parser recovers the class from the count caption the
engine writes with it ("a photo of two pairs of skis" -> skis)."""
import pytest

from hn_data.coco import COCO_CLASSES
from hn_data.objects import CLASSES
from hn_data.plurals import plural
from train.eval.classes import objects_in_caption, vocabulary


@pytest.mark.parametrize("vocab", ["coco80", "procedural"])
def test_parser_reads_what_the_engine_writes(vocab):
    names = vocabulary(vocab)
    for name in names:
        assert objects_in_caption(f"a photo of two {plural(name)}", names) == [name], name
        assert objects_in_caption(f"a photo of one {name}", names) == [name], name


def test_engine_backends_and_parser_share_it():
    from hn_data.backend_procedural import ProceduralBackend
    from train.eval import classes
    assert classes.plural is plural
    assert ProceduralBackend().plural("box") == plural("box") == "boxes"


def test_irregular_and_rule_forms():
    assert [plural(n) for n in ("skis", "scissors", "person", "bus", "box", "bench", "leaf", "kite")] == [
        "pairs of skis", "pairs of scissors", "people", "buses", "boxes", "benches", "leaves", "kites"]
    assert len(set(COCO_CLASSES)) == 80 and set(vocabulary("procedural")) == set(CLASSES)
