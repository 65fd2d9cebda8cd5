"""Box IoU and greedy matching on hand-checked boxes."""
from edge_perception.core.detection_metrics import box_iou, greedy_match
import pytest


def test_box_iou_known_values():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0
    assert box_iou((0, 0, 0, 0), (0, 0, 0, 0)) == 0.0


def test_greedy_match_is_one_to_one_and_thresholded():
    truth = [(0, 0, 10, 10), (100, 100, 110, 110), (200, 0, 210, 10)]
    predicted = [(101, 100, 111, 110), (0, 1, 10, 11), (0, 0, 10, 10), (205, 0, 215, 10)]
    assert greedy_match(truth, predicted) == [(0, 2), (1, 0)]
