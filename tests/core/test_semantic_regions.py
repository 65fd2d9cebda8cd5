"""label_regions: label image -> one detection per connected region, on hand-made label images."""
from edge_perception.core.semantic_regions import label_regions, RegionInputError
import numpy as np
import pytest

NAMES = ('background', 'cardboard', 'glass', 'metal', 'paper', 'plastic', 'trash')


def _labels():
    labels = np.zeros((60, 80), np.uint8)
    labels[10:30, 10:40] = 3            # metal, 600 px
    labels[40:50, 50:70] = 3            # a second metal region, 200 px
    labels[5:15, 60:75] = 5             # plastic, 150 px
    labels[55, 0] = 1                   # a one-pixel speck of cardboard
    return labels


def test_one_detection_per_connected_region_largest_first():
    labels = _labels()
    confidence = np.full(labels.shape, 0.5, np.float32)
    confidence[10:30, 10:40] = 0.9
    dets = label_regions(labels, confidence, NAMES, min_area_px=100)
    assert [(d.class_id, d.class_name) for d in dets] == [
        (3, 'metal'), (3, 'metal'), (5, 'plastic')]
    big, small, plastic = dets
    assert big.box_xyxy == (10.0, 10.0, 40.0, 30.0)
    assert small.box_xyxy == (50.0, 40.0, 70.0, 50.0)
    assert plastic.box_xyxy == (60.0, 5.0, 75.0, 15.0)
    assert big.mask.dtype == bool and big.mask.shape == labels.shape
    assert big.mask.sum() == 600 and small.mask.sum() == 200 and plastic.mask.sum() == 150
    assert not (big.mask & small.mask).any()
    assert big.score == pytest.approx(0.9) and small.score == pytest.approx(0.5)


def test_score_is_the_mean_confidence_of_the_region():
    labels = np.zeros((10, 10), np.uint8)
    labels[0:2, 0:5] = 2
    confidence = np.zeros((10, 10), np.float32)
    confidence[0, 0:5] = 1.0            # half the region at 1.0, half at 0.0
    (det,) = label_regions(labels, confidence, NAMES, min_area_px=1)
    assert det.score == pytest.approx(0.5)


def test_specks_and_background_are_not_objects():
    labels = _labels()
    dets = label_regions(labels, np.ones(labels.shape), NAMES, min_area_px=1)
    assert sorted(d.class_name for d in dets) == ['cardboard', 'metal', 'metal', 'plastic']
    assert label_regions(np.zeros((5, 5), np.uint8), np.ones((5, 5)), NAMES) == []


def test_max_regions_keeps_the_largest():
    dets = label_regions(_labels(), np.ones((60, 80)), NAMES, min_area_px=1, max_regions=2)
    assert [int(d.mask.sum()) for d in dets] == [600, 200]


def test_diagonal_touch_is_one_region():
    labels = np.zeros((4, 4), np.uint8)
    labels[0, 0] = labels[1, 1] = labels[2, 2] = 4
    (det,) = label_regions(labels, np.ones((4, 4)), NAMES, min_area_px=1)
    assert det.mask.sum() == 3


@pytest.mark.parametrize('labels, confidence, match', [
    (np.zeros((4, 4), np.int32), np.ones((4, 4)), 'uint8'),
    (np.zeros((4, 4, 1), np.uint8), np.ones((4, 4, 1)), '2-D'),
    (np.zeros((4, 4), np.uint8), np.ones((4, 5)), 'shape'),
    (np.full((4, 4), 9, np.uint8), np.ones((4, 4)), 'no name'),
])
def test_bad_inputs_are_refused_with_a_reason(labels, confidence, match):
    with pytest.raises(RegionInputError, match=match):
        label_regions(labels, confidence, NAMES)
