"""GIoU and the box loss against hand-computed values; RefCOCOg-style loading."""
import json

import pytest
import torch

from train.probe.refs import load_refs
from train.probe.tasks.boxes import box_loss, cxcywh_to_xyxy, iou_and_giou


def test_giou_matches_hand_computed_values():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    iou, giou = iou_and_giou(a, b)
    # overlap 1, union 4 + 4 - 1 = 7, enclosing box 3 x 3 = 9: GIoU = 1/7 - (9 - 7)/9 = -5/63
    # disjoint: IoU 0, union 2, enclosing 3 x 1: GIoU = 0 - (3 - 2)/3 = -1/3; identical: 1
    assert torch.allclose(iou, torch.tensor([1 / 7, 0.0, 1.0]))
    assert torch.allclose(giou, torch.tensor([-5 / 63, -1 / 3, 1.0]))


def test_box_loss_weights_giou_and_l1():
    p, t = torch.tensor([[0.0, 0.0, 2.0, 2.0]]), torch.tensor([[1.0, 1.0, 3.0, 3.0]])
    # 1 - GIoU = 68/63; L1 summed over the 4 coordinates = 4
    assert box_loss(p, t, w_giou=2.0, w_l1=5.0).item() == pytest.approx(2 * 68 / 63 + 5 * 4)
    assert torch.allclose(cxcywh_to_xyxy(torch.tensor([0.5, 0.5, 0.2, 0.4])),
                          torch.tensor([0.4, 0.3, 0.6, 0.7]))


def test_refs_convert_coco_boxes_and_skip_bad_ones(tmp_path):
    lines = [{"image": "a.jpg", "bbox": [10, 20, 30, 40], "sentences": ["the dog", "a brown dog"],
              "category": "animal", "split": "train", "width": 100, "height": 200},
             {"image": "a.jpg", "bbox": [10, 20, 0, 40], "phrase": "empty", "category": "x",
              "split": "val", "width": 100, "height": 200},
             {"image": "gone.jpg", "bbox": [1, 1, 2, 2], "phrase": "p", "category": "x", "split": "test"}]
    f = tmp_path / "refs.jsonl"
    f.write_text("\n".join(json.dumps(x) for x in lines))
    refs, skipped = load_refs(f)
    assert [r.phrase for r in refs] == ["the dog", "a brown dog"]
    assert refs[0].box == pytest.approx((0.1, 0.1, 0.4, 0.3))
    assert skipped == {"bad_box": 1, "missing_image": 1}
    f.write_text(json.dumps({"image": "a.jpg", "bbox": [0, 0, 1, 1], "phrase": "p", "split": "train"}))
    with pytest.raises(ValueError, match=r"refs.jsonl:1: missing key 'category'"):
        load_refs(f)
