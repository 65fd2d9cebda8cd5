"""Region material refinement: the crop classifier and the segmenter vote on each region.

The classifier is a real ONNX graph run by the real loader, with a closed-form answer:
logits = GAIN * (mean R, mean G, mean B) of the crop into (metal, plastic, glass), 0 for the
other materials. So a red item on a black belt reads 'metal' to the classifier, with
probabilities the test computes itself from the crop's mean colour.
"""
import json

import cv2
from edge_perception.core.material import crop_for_box, masked_crop_for_region, MaterialClassifier
from edge_perception.core.region_materials import (
    MASK_DILATE_PX, RefinedLabels, RegionMaterialError, RegionMaterialRefiner)
from edge_perception.core.waste_segmentation import LABELS
import numpy as np
import onnx
from onnx import helper, TensorProto
import pytest

GAIN = 10.0
MATERIALS = list(LABELS[1:])        # cardboard, glass, metal, paper, plastic, trash
# classifier output <- input channel: metal <- R, plastic <- G, glass <- B
OUTPUT_OF_CHANNEL = {0: MATERIALS.index('metal'), 1: MATERIALS.index('plastic'),
                     2: MATERIALS.index('glass')}
H, W = 60, 80


def write_colour_classifier(path, class_names=MATERIALS, input_size=16):
    image = helper.make_tensor_value_info('image', TensorProto.FLOAT,
                                          ['batch', 3, input_size, input_size])
    logits = helper.make_tensor_value_info('logits', TensorProto.FLOAT,
                                           ['batch', len(class_names)])
    weights = np.zeros((3, len(class_names)), np.float32)
    for channel, out in OUTPUT_OF_CHANNEL.items():
        if out < len(class_names):
            weights[channel, out] = GAIN
    graph = helper.make_graph(
        [helper.make_node('ReduceMean', ['image'], ['mean'], axes=[2, 3], keepdims=0),
         helper.make_node('MatMul', ['mean', 'weights'], ['logits'])],
        'colour_material', [image], [logits],
        initializer=[onnx.numpy_helper.from_array(weights, 'weights')])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    helper.set_model_props(model, {'class_names': json.dumps(list(class_names))})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def classifier(tmp_path):
    return MaterialClassifier(write_colour_classifier(tmp_path / 'colour.onnx'),
                              intra_op_num_threads=1)


def segmenter_probabilities(background=0.1, plastic=0.5, metal=0.3, h=6, w=8):
    """7 x h x w softmax, the same everywhere; the other four materials share the rest."""
    rest = (1.0 - background - plastic - metal) / 4
    p = np.full((len(LABELS), h, w), rest, np.float32)
    p[0], p[LABELS.index('plastic')], p[LABELS.index('metal')] = background, plastic, metal
    return p


def red_item_scene(box=(20, 15, 60, 45)):
    """Return a red rectangle on black, labelled 'plastic' as a segmenter might."""
    x0, y0, x1, y1 = box
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[y0:y1, x0:x1] = (255, 0, 0)
    labels = np.zeros((H, W), np.uint8)
    labels[y0:y1, x0:x1] = LABELS.index('plastic')
    confidence = np.where(labels > 0, 0.5, 0.9).astype(np.float32)
    return rgb, labels, confidence


def expected_combined(rgb, box, exponent, segment_p, crop=None):
    """Compute the module's formula here, from the crop's mean colour (default: box crop)."""
    crop = (crop_for_box(rgb, box) if crop is None else crop).astype(np.float64) / 255.0
    mean = cv2.resize(crop, (16, 16), interpolation=cv2.INTER_AREA).mean(axis=(0, 1))
    logits = np.zeros(len(MATERIALS))
    for channel, out in OUTPUT_OF_CHANNEL.items():
        logits[out] = GAIN * mean[channel]
    p_classifier = np.exp(logits - logits.max())
    p_classifier /= p_classifier.sum()
    combined = p_classifier ** exponent * segment_p
    return combined / combined.sum()


def test_classifier_vote_relabels_region_with_the_closed_form_probability(classifier):
    rgb, labels, confidence = red_item_scene()
    probs = segmenter_probabilities()
    out = RegionMaterialRefiner(classifier, LABELS, exponent=2.0, min_area_px=10).refine(
        rgb, labels, confidence, probs)
    assert isinstance(out, RefinedLabels) and out.regions == 1
    item = labels > 0
    assert (out.labels[item] == LABELS.index('metal')).all()
    assert (out.labels[~item] == 0).all()
    expected = expected_combined(rgb, (20, 15, 60, 45), 2.0, probs[1:, 0, 0])
    assert expected.argmax() == MATERIALS.index('metal')
    np.testing.assert_allclose(out.material_confidence[item], expected.max(), rtol=1e-4)
    assert (out.material_confidence[~item] == 0).all()
    assert labels[item][0] == LABELS.index('plastic'), 'the input labels are not written to'


def test_exponent_zero_keeps_the_segmenter_material(classifier):
    rgb, labels, confidence = red_item_scene()
    out = RegionMaterialRefiner(classifier, LABELS, exponent=0.0, min_area_px=10).refine(
        rgb, labels, confidence, segmenter_probabilities())
    assert (out.labels == labels).all()


def test_confident_segmenter_outvotes_a_weak_classifier(classifier):
    # A dark red item: the classifier leans to metal only slightly; the segmenter is sure.
    rgb, labels, confidence = red_item_scene()
    rgb[rgb > 0] = 20
    probs = segmenter_probabilities(background=0.02, plastic=0.95, metal=0.01)
    out = RegionMaterialRefiner(classifier, LABELS, exponent=2.0, min_area_px=10,
                                vote_below=1.0).refine(rgb, labels, confidence, probs)
    expected = expected_combined(rgb, (20, 15, 60, 45), 2.0, probs[1:, 0, 0])
    assert expected.argmax() == MATERIALS.index('plastic')
    assert (out.labels[labels > 0] == LABELS.index('plastic')).all()


def test_region_mean_uses_only_the_cells_the_region_covers(classifier):
    # Left half of the low-res map says plastic, right half glass; the item is on the right.
    rgb, labels, confidence = red_item_scene(box=(48, 10, 76, 50))
    rgb[:] = 0                                          # black item: the classifier is uniform
    labels[:] = 0
    labels[10:50, 48:76] = LABELS.index('plastic')
    probs = segmenter_probabilities()
    probs[:, :, 4:] = segmenter_probabilities(plastic=0.1, metal=0.1)[:, :, 4:]
    probs[LABELS.index('glass'), :, 4:] += 0.6
    out = RegionMaterialRefiner(classifier, LABELS, exponent=2.0, min_area_px=10).refine(
        rgb, labels, confidence, probs)
    assert (out.labels[labels > 0] == LABELS.index('glass')).all()


def test_regions_the_segmenter_is_sure_of_are_not_classified(classifier):
    rgb, labels, confidence = red_item_scene()           # the classifier would say metal
    probs = segmenter_probabilities(background=0.1, plastic=0.85, metal=0.01)
    calls = []
    original = classifier.classify
    classifier.classify = lambda crops: calls.append(len(crops)) or original(crops)
    refiner = RegionMaterialRefiner(classifier, LABELS, min_area_px=10, vote_below=0.9)
    out = refiner.refine(rgb, labels, confidence, probs)
    # plastic's share of the materials: 0.85 / 0.9 = 0.944 >= 0.9, so no vote.
    assert calls == [] and out.regions == 0
    assert (out.labels == labels).all()
    np.testing.assert_allclose(out.material_confidence[labels > 0], 0.85 / 0.9, rtol=1e-5)
    refiner.vote_below = 0.95                            # now it asks, and metal wins
    out = refiner.refine(rgb, labels, confidence, probs)
    assert calls == [1] and (out.labels[labels > 0] == LABELS.index('metal')).all()


def test_small_regions_and_background_are_left_alone(classifier):
    rgb, labels, confidence = red_item_scene(box=(20, 15, 25, 20))     # 25 px
    out = RegionMaterialRefiner(classifier, LABELS, min_area_px=26).refine(
        rgb, labels, confidence, segmenter_probabilities())
    assert out.regions == 0 and (out.labels == labels).all()
    assert not out.material_confidence.any()


def test_two_regions_are_classified_in_one_batch(classifier):
    rgb, labels, confidence = red_item_scene(box=(5, 5, 25, 25))
    rgb[30:55, 45:75] = (0, 0, 255)                       # a blue item labelled paper
    labels[30:55, 45:75] = LABELS.index('paper')
    calls = []
    original = classifier.classify
    classifier.classify = lambda crops: calls.append(len(crops)) or original(crops)
    out = RegionMaterialRefiner(classifier, LABELS, min_area_px=10).refine(
        rgb, labels, confidence, segmenter_probabilities())
    assert calls == [2]
    assert (out.labels[5:25, 5:25] == LABELS.index('metal')).all()
    # Blue reads glass to the classifier; the segmenter's even 0.025 on glass and paper leaves
    # the classifier's vote to decide.
    assert (out.labels[30:55, 45:75] == LABELS.index('glass')).all()


def test_masked_crops_show_the_classifier_the_region_not_its_surroundings(classifier):
    # A red triangle (labelled plastic) on a blue surface that fills most of its box: the box
    # crop reads blue (glass) to the classifier, the masked crop reads the red item (metal).
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[10:50, 20:60] = (0, 0, 255)
    rows, cols = np.mgrid[:H, :W]
    item = (rows >= 10) & (rows < 50) & (cols >= 20) & (cols < 60) & (rows - 10 > cols - 12)
    rgb[item] = (255, 0, 0)
    labels = np.where(item, LABELS.index('plastic'), 0).astype(np.uint8)
    confidence = np.where(item, 0.5, 0.9).astype(np.float32)
    probs = segmenter_probabilities()
    rows_i, cols_i = np.nonzero(item)
    box = (cols_i.min(), rows_i.min(), cols_i.max() + 1, rows_i.max() + 1)
    refiner = RegionMaterialRefiner(classifier, LABELS, min_area_px=10)
    assert refiner.crop_mode == 'box'
    out = refiner.refine(rgb, labels, confidence, probs)
    assert (out.labels[item] == LABELS.index('glass')).all()
    refiner.crop_mode = 'masked'
    out = refiner.refine(rgb, labels, confidence, probs)
    expected = expected_combined(rgb, box, refiner.exponent, probs[1:, 0, 0],
                                 crop=masked_crop_for_region(rgb, box, item, MASK_DILATE_PX))
    assert expected.argmax() == MATERIALS.index('metal')
    assert (out.labels[item] == LABELS.index('metal')).all()
    np.testing.assert_allclose(out.material_confidence[item], expected.max(), rtol=1e-4)


def test_unknown_crop_mode_is_refused(classifier):
    with pytest.raises(RegionMaterialError, match='crop_mode'):
        RegionMaterialRefiner(classifier, LABELS, crop_mode='polygon')


def test_classifier_without_a_material_is_refused_by_name(tmp_path):
    clf = MaterialClassifier(write_colour_classifier(tmp_path / 'c.onnx',
                                                     class_names=MATERIALS[:-1]))
    with pytest.raises(RegionMaterialError, match='trash'):
        RegionMaterialRefiner(clf, LABELS)


@pytest.mark.parametrize('shape', [(6, 6, 8), (7, 6), (3, 7, 6, 8)])
def test_probabilities_of_the_wrong_shape_are_refused(classifier, shape):
    rgb, labels, confidence = red_item_scene()
    with pytest.raises(RegionMaterialError, match='probabilities of shape'):
        RegionMaterialRefiner(classifier, LABELS).refine(rgb, labels, confidence,
                                                         np.zeros(shape, np.float32))


def test_image_and_labels_of_different_sizes_are_refused(classifier):
    rgb, labels, confidence = red_item_scene()
    with pytest.raises(RegionMaterialError, match='differ in size'):
        RegionMaterialRefiner(classifier, LABELS).refine(rgb[:, :40], labels, confidence,
                                                         segmenter_probabilities())


@pytest.mark.parametrize('exponent', [-1.0, float('nan')])
def test_bad_exponent_is_refused(classifier, exponent):
    with pytest.raises(RegionMaterialError, match='exponent'):
        RegionMaterialRefiner(classifier, LABELS, exponent=exponent)
