"""Waste segmentation: pooled-IoU metrics, the ONNX runtime, and the eval-waste-seg tool.

Metric tests use hand-computed confusion matrices. Runtime tests use (a) a tiny hand-built ONNX
graph whose answer is known in closed form, logits = GAIN * (1x1 conv of the RGB input) pooled to
half resolution, so a pure red frame is 'metal' everywhere with a known softmax probability, and
(b) the shipped model through the real loader (shapes, dtypes, metadata, size budget).
Nothing here needs /work/shared/data or times anything.
"""
import argparse
import json

import cv2
from edge_perception.core import region_materials
from edge_perception.core import waste_segmentation as ws
from edge_perception.core.waste_segmentation import (
    confusion_matrix, LABELS, pooled_iou, SegmentationResult, upsample_argmax,
    vote_components, WasteSegmentationInputError, WasteSegmentationModelError, WasteSegmenter)
from edge_perception.tools import eval_waste_seg
import numpy as np
import onnx
from onnx import helper, TensorProto
import pytest

GAIN = 10.0
# Output channel <- input channel of the tiny model: metal <- R, plastic <- G, glass <- B.
CHANNEL_OF = {3: 0, 5: 1, 2: 2}


def write_tiny_model(path, height=8, width=12, class_names=LABELS, metadata_size=None,
                     channels=7, pool=2):
    """1x1 conv (metal <- R, plastic <- G, glass <- B, times GAIN), pool x pool average pool."""
    image = helper.make_tensor_value_info('image', TensorProto.FLOAT, ['batch', 3, height, width])
    logits = helper.make_tensor_value_info(
        'logits', TensorProto.FLOAT, ['batch', channels, height // pool, width // pool])
    weights = np.zeros((channels, 3, 1, 1), np.float32)
    for out, source in CHANNEL_OF.items():
        if out < channels:
            weights[out, source] = GAIN
    graph = helper.make_graph(
        [helper.make_node('Conv', ['image', 'w'], ['c']),
         helper.make_node('AveragePool', ['c'], ['logits'], kernel_shape=[pool, pool],
                          strides=[pool, pool])],
        'tiny_seg', [image], [logits], initializer=[onnx.numpy_helper.from_array(weights, 'w')])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    props = {}
    if class_names is not None:
        props['class_names'] = json.dumps(list(class_names))
    if metadata_size is not None:
        props['input_width'], props['input_height'] = (str(v) for v in metadata_size)
    helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def solid(colour, height=30, width=40):
    return np.tile(np.array(colour, np.uint8), (height, width, 1))


@pytest.fixture
def tiny(tmp_path):
    return WasteSegmenter(write_tiny_model(tmp_path / 'tiny.onnx'), intra_op_num_threads=1)


# ------------------------------------------------------------------------------------ metrics
def test_confusion_matrix_hand_computed():
    truth = np.array([[0, 1], [2, 2]])
    predicted = np.array([[0, 2], [2, 1]])
    cm = confusion_matrix(truth, predicted)
    expected = np.zeros((7, 7), np.int64)
    expected[0, 0] = expected[1, 2] = expected[2, 2] = expected[2, 1] = 1
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, expected)


def test_pooled_iou_hand_computed():
    cm = confusion_matrix(np.array([[0, 1], [2, 2]]), np.array([[0, 2], [2, 1]]))
    metrics = pooled_iou(cm)
    # background: tp 1, union 1; cardboard: tp 0, union 2; glass: tp 1, union 2 + 2 - 1 = 3.
    assert metrics['iou']['background'] == 1.0
    assert metrics['iou']['cardboard'] == 0.0
    assert metrics['iou']['glass'] == pytest.approx(1 / 3)
    for label in ('metal', 'paper', 'plastic', 'trash'):
        assert metrics['iou'][label] is None
    assert metrics['miou'] == pytest.approx((1 + 0 + 1 / 3) / 3)


def test_pooling_sums_over_images_before_dividing():
    # Image A: metal 1 px right. Image B: metal 3 px predicted as paper. Pooled IoU 1/4
    # (the mean of per-image IoUs would be 0.5).
    a = confusion_matrix(np.array([[3]]), np.array([[3]]))
    b = confusion_matrix(np.array([[3, 3, 3]]), np.array([[4, 4, 4]]))
    assert pooled_iou(a + b)['iou']['metal'] == pytest.approx(0.25)
    assert pooled_iou(a + b)['iou']['paper'] == 0.0


def test_all_seven_labels_perfect():
    truth = np.arange(7).reshape(1, 7)
    metrics = pooled_iou(confusion_matrix(truth, truth))
    assert metrics['miou'] == 1.0
    assert list(metrics['iou']) == list(LABELS)


@pytest.mark.parametrize('truth, predicted', [
    (np.zeros((2, 2), np.int64), np.zeros((2, 3), np.int64)),     # shape
    (np.full((2, 2), 7), np.zeros((2, 2), np.int64)),              # label > 6
    (np.full((2, 2), -1), np.zeros((2, 2), np.int64)),             # negative
    (np.zeros((2, 2), np.float32), np.zeros((2, 2), np.int64)),    # not integers
])
def test_confusion_matrix_rejects_bad_label_maps(truth, predicted):
    with pytest.raises(WasteSegmentationInputError):
        confusion_matrix(truth, predicted)


def test_pooled_iou_rejects_wrong_shape():
    with pytest.raises(WasteSegmentationInputError):
        pooled_iou(np.zeros((3, 3), np.int64))


def test_vote_components_hand_computed():
    labels = np.array([[0, 3, 3, 0, 0],
                       [0, 3, 5, 0, 2],
                       [0, 0, 0, 0, 2]], np.uint8)
    confidence = np.ones(labels.shape, np.float32)
    confidence[1, 2] = 5.0                          # 5 (weight 5) outvotes 3 (weight 3)
    expected = np.array([[0, 5, 5, 0, 0],
                         [0, 5, 5, 0, 2],
                         [0, 0, 0, 0, 2]], np.uint8)
    np.testing.assert_array_equal(vote_components(labels, confidence), expected)
    background = np.zeros((3, 4), np.uint8)
    np.testing.assert_array_equal(vote_components(background, np.ones((3, 4))), background)


def test_upsample_argmax_matches_numpy():
    logits = np.random.default_rng(1).normal(0, 2, (7, 5, 6)).astype(np.float32)
    labels, confidence = upsample_argmax(logits, 20, 24)
    probs = np.exp(logits - logits.max(0)) / np.exp(logits - logits.max(0)).sum(0)
    planes = np.stack([cv2.resize(p, (24, 20), interpolation=cv2.INTER_LINEAR) for p in probs])
    np.testing.assert_array_equal(labels, planes.argmax(0))
    np.testing.assert_allclose(confidence, planes.max(0), rtol=1e-6)
    assert labels.dtype == np.uint8 and confidence.dtype == np.float32


# ------------------------------------------------------------------------------------ runtime
def test_tiny_model_known_answer_at_frame_size(tiny):
    assert (tiny.input_height, tiny.input_width) == (8, 12)
    result = tiny.segment(solid((255, 0, 0), 30, 40))
    assert isinstance(result, SegmentationResult)
    assert result.labels.shape == (30, 40) and result.labels.dtype == np.uint8
    assert result.confidence.shape == (30, 40) and result.confidence.dtype == np.float32
    assert np.all(result.labels == LABELS.index('metal'))
    # logits: GAIN for metal, 0 for the six others.
    expected = np.exp(GAIN) / (np.exp(GAIN) + 6)
    np.testing.assert_allclose(result.confidence, expected, rtol=1e-5)
    assert result.inference_ms >= 0


def test_tiny_model_follows_the_frame_layout(tiny):
    frame = solid((0, 255, 0), 40, 60)          # plastic on the left
    frame[:, 30:] = (0, 0, 255)                 # glass on the right
    labels = tiny.segment(frame).labels
    assert np.all(labels[:, :25] == LABELS.index('plastic'))
    assert np.all(labels[:, 35:] == LABELS.index('glass'))


def test_edge_refinement_puts_the_outline_on_the_image_edge(tmp_path):
    # Stride 8 like the shipped model; the metal | plastic edge at column 18 lies inside the
    # third 8-pixel cell, so plain upsampling of the logits cannot place it there.
    path = write_tiny_model(tmp_path / 's8.onnx', height=32, width=48, pool=8)
    frame = solid((255, 0, 0), 32, 48)
    frame[:, 18:] = (0, 255, 0)
    truth = np.where(np.arange(48) < 18, LABELS.index('metal'), LABELS.index('plastic'))
    truth = np.broadcast_to(truth, (32, 48))
    plain = WasteSegmenter(path, edge_refinement=False).segment(frame)
    refined = WasteSegmenter(path).segment(frame)
    assert np.count_nonzero(plain.labels != truth) >= 32          # at least a column off
    np.testing.assert_array_equal(refined.labels, truth)
    assert refined.confidence.min() >= 0.0 and refined.confidence.max() <= 1.0
    # The low-resolution probabilities (the region vote's input) are the model's either way.
    np.testing.assert_array_equal(plain.probabilities, refined.probabilities)


def test_component_vote_option(tmp_path):
    segmenter = WasteSegmenter(write_tiny_model(tmp_path / 'v.onnx'), component_vote=True)
    frame = solid((0, 255, 0), 40, 60)
    frame[:, 30:] = (0, 0, 255)                     # one connected region: one material
    labels = segmenter.segment(frame).labels
    assert len(np.unique(labels)) == 1


def test_grey_and_rgba_inputs(tiny):
    grey = np.full((10, 16), 200, np.uint8)
    assert tiny.segment(grey).labels.shape == (10, 16)
    rgba = np.dstack([solid((255, 0, 0), 10, 16), np.full((10, 16), 255, np.uint8)])
    assert np.all(tiny.segment(rgba).labels == LABELS.index('metal'))


@pytest.mark.parametrize('image', [
    np.zeros((10, 10, 5), np.uint8),
    np.zeros((10, 10, 3), np.float32),
    np.zeros((1, 1, 3), np.uint8),
    np.zeros((0, 10, 3), np.uint8),
    [[0, 0, 0]],
])
def test_bad_images_raise(tiny, image):
    with pytest.raises(WasteSegmentationInputError):
        tiny.segment(image)


def test_missing_model_raises(tmp_path):
    with pytest.raises(WasteSegmentationModelError, match='not found'):
        WasteSegmenter(tmp_path / 'nope.onnx')


def test_corrupt_model_raises(tmp_path):
    path = tmp_path / 'corrupt.onnx'
    path.write_bytes(b'this is not an onnx file')
    with pytest.raises(WasteSegmentationModelError, match='cannot load'):
        WasteSegmenter(path)


@pytest.mark.parametrize('kwargs, match', [
    ({'class_names': None}, 'class_names'),
    ({'class_names': ['a', 'b', 'c', 'd', 'e', 'f', 'g']}, 'are not the labels'),
    ({'metadata_size': (16, 8)}, 'disagrees'),
    ({'channels': 6, 'class_names': LABELS}, 'channels'),
])
def test_inconsistent_models_raise(tmp_path, kwargs, match):
    path = write_tiny_model(tmp_path / 'bad.onnx', **kwargs)
    with pytest.raises(WasteSegmentationModelError, match=match):
        WasteSegmenter(path)


def test_bad_thread_count_raises(tmp_path):
    with pytest.raises(WasteSegmentationModelError):
        WasteSegmenter(write_tiny_model(tmp_path / 't.onnx'), intra_op_num_threads=0)


# ------------------------------------------------------------------------------ shipped model
def test_shipped_model_size_and_metadata():
    path = ws.DEFAULT_MODEL_PATH
    assert path.is_file()
    assert path.stat().st_size < 10 * 1024 * 1024
    metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert tuple(json.loads(metadata['class_names'])) == LABELS
    assert int(metadata['input_width']) > 0 and int(metadata['input_height']) > 0


def test_shipped_model_shapes_and_grey_frame():
    segmenter = WasteSegmenter(intra_op_num_threads=1)
    assert segmenter.model_path == ws.DEFAULT_MODEL_PATH
    assert segmenter.class_names == list(LABELS)
    frame = np.full((120, 160, 3), 128, np.uint8)
    result = segmenter.segment(frame)
    assert result.labels.shape == (120, 160) and result.labels.dtype == np.uint8
    assert result.confidence.shape == (120, 160) and result.confidence.dtype == np.float32
    assert np.all((result.confidence > 0) & (result.confidence <= 1.0 + 1e-6))
    assert result.labels.max() < len(LABELS)
    assert np.mean(result.labels == 0) > 0.9


def test_shipped_int8_variant_loads():
    path = ws.DEFAULT_MODEL_PATH.with_name('waste_seg_lite0_int8.onnx')
    assert path.stat().st_size < 5 * 1024 * 1024
    segmenter = WasteSegmenter(path, intra_op_num_threads=1)
    result = segmenter.segment(np.full((48, 64, 3), 128, np.uint8))
    assert result.labels.shape == (48, 64)
    assert (segmenter.input_height, segmenter.input_width) == (
        WasteSegmenter(intra_op_num_threads=1).input_height,
        WasteSegmenter(intra_op_num_threads=1).input_width)


# ------------------------------------------------------------------------------- eval tool
def write_set(root, frames, masks):
    (root / 'images').mkdir(parents=True)
    (root / 'masks').mkdir()
    for i, (frame, mask) in enumerate(zip(frames, masks)):
        cv2.imwrite(str(root / 'images' / f'{i:02d}.png'), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        if mask is not None:
            cv2.imwrite(str(root / 'masks' / f'{i:02d}.png'), mask)
    return root / 'images', root / 'masks'


def test_eval_dir_known_answer(tmp_path, tiny):
    frame = solid((255, 0, 0), 20, 24)                     # predicted metal everywhere
    mask = np.full((20, 24), LABELS.index('metal'), np.uint8)
    mask[:, :6] = LABELS.index('paper')                   # a quarter is really paper
    images, masks = write_set(tmp_path, [frame, frame], [mask, mask])
    metrics = eval_waste_seg.evaluate_dir(tiny, images, masks)
    assert metrics['images'] == 2
    assert metrics['iou']['metal'] == pytest.approx(0.75)
    assert metrics['iou']['paper'] == 0.0
    assert metrics['iou']['background'] is None
    assert metrics['miou'] == pytest.approx(0.375)


def test_eval_cli_writes_json(tmp_path):
    model = write_tiny_model(tmp_path / 'tiny.onnx')
    images, masks = write_set(tmp_path / 'set', [solid((0, 255, 0), 16, 16)],
                              [np.full((16, 16), LABELS.index('plastic'), np.uint8)])
    out = tmp_path / 'out' / 'metrics.json'
    args = argparse.Namespace(images=images, masks=masks, json=out, model=model, threads=1,
                              material_model='none')
    assert eval_waste_seg.run(args) == 0
    report = json.loads(out.read_text())
    assert report['miou'] == 1.0 and report['images'] == 1
    assert set(report) >= {'miou', 'iou', 'images', 'model', 'ms_per_frame_p50'}
    assert report['material_model'] is None


def test_eval_cli_refines_regions_with_the_shipped_classifier_by_default(tmp_path):
    # A 16 x 16 frame: its one region (256 px) is over the 200 px floor, so the classifier votes.
    model = write_tiny_model(tmp_path / 'tiny.onnx')
    images, masks = write_set(tmp_path / 'set', [solid((0, 255, 0), 16, 16)],
                              [np.full((16, 16), LABELS.index('plastic'), np.uint8)])
    out = tmp_path / 'metrics.json'
    args = argparse.Namespace(images=images, masks=masks, json=out, model=model, threads=1)
    assert eval_waste_seg.run(args) == 0
    report = json.loads(out.read_text())
    assert report['material_model'].endswith('material_effnet_lite0.onnx')
    assert report['material_exponent'] == region_materials.EXPONENT and report['images'] == 1


def random_confusions(seed, n=5):
    return np.random.default_rng(seed).integers(0, 50, (n, len(LABELS), len(LABELS)))


def test_paired_bootstrap_of_repeated_images_has_no_spread():
    # Every image alike: every resample pools to the same matrices, so the difference is exact.
    a = np.repeat(random_confusions(1, 1), 6, axis=0)
    b = np.repeat(random_confusions(2, 1), 6, axis=0)
    result = ws.paired_bootstrap_miou(a, b, resamples=50)
    expected = ws.pooled_iou(a[0])['miou'] - ws.pooled_iou(b[0])['miou']
    assert result['difference'] == pytest.approx(expected)
    assert result['sd'] == pytest.approx(0.0, abs=1e-12)
    assert result['interval_90'] == pytest.approx([expected, expected])
    assert result['images'] == 6 and result['resamples'] == 50


def test_paired_bootstrap_of_a_configuration_against_itself_is_zero():
    a = random_confusions(3)
    result = ws.paired_bootstrap_miou(a, a.copy(), resamples=30)
    assert result['difference'] == 0.0 and result['sd'] == 0.0


def test_paired_bootstrap_spread_brackets_the_difference():
    # Image-to-image variation gives a spread; the full-set difference lies inside it.
    a, b = random_confusions(4, 20), random_confusions(5, 20)
    result = ws.paired_bootstrap_miou(a, b, resamples=300)
    low, high = result['interval_90']
    assert result['sd'] > 0 and low < result['difference'] < high


@pytest.mark.parametrize('a, b', [(np.zeros((2, 7, 7)), np.zeros((3, 7, 7))),
                                  (np.zeros((2, 6, 6)), np.zeros((2, 6, 6))),
                                  (np.zeros((0, 7, 7)), np.zeros((0, 7, 7)))])
def test_paired_bootstrap_refuses_unpaired_stacks(a, b):
    with pytest.raises(ws.WasteSegmentationInputError, match='stacks'):
        ws.paired_bootstrap_miou(a, b)


def test_eval_cli_compares_two_reports_of_the_same_images(tmp_path):
    model = write_tiny_model(tmp_path / 'tiny.onnx')
    frames = [solid((0, 255, 0), 16, 16), solid((255, 0, 0), 16, 16)]
    masks_in = [np.full((16, 16), LABELS.index('plastic'), np.uint8)] * 2
    images, masks = write_set(tmp_path / 'set', frames, masks_in)
    base, other = tmp_path / 'base.json', tmp_path / 'other.json'
    common = {'images': images, 'masks': masks, 'model': model, 'threads': 1,
              'material_model': 'none'}
    assert eval_waste_seg.run(argparse.Namespace(json=base, **common)) == 0
    report = json.loads(base.read_text())
    assert sorted(report['per_image_confusion']) == ['00', '01']
    assert np.array(report['per_image_confusion']['00']).sum() == 16 * 16
    assert eval_waste_seg.run(argparse.Namespace(json=other, compare_to=base, **common)) == 0
    compared = json.loads(other.read_text())['compare']
    assert compared['difference'] == 0.0 and compared['sd'] == 0.0
    assert compared['images'] == 2 and compared['base'] == str(base)


def test_eval_cli_comparison_needs_the_same_images(tmp_path, capsys):
    model = write_tiny_model(tmp_path / 'tiny.onnx')
    images, masks = write_set(tmp_path / 'set', [solid((0, 255, 0), 16, 16)],
                              [np.zeros((16, 16), np.uint8)])
    base = tmp_path / 'base.json'
    base.write_text(json.dumps({'miou': 1.0, 'per_image_confusion': {'zz': np.eye(7).tolist()}}))
    args = argparse.Namespace(images=images, masks=masks, json=tmp_path / 'o.json', model=model,
                              threads=1, material_model='none', compare_to=base)
    assert eval_waste_seg.run(args) == 2
    assert 'different images' in capsys.readouterr().err
    base.write_text(json.dumps({'miou': 1.0}))
    assert eval_waste_seg.run(args) == 2
    assert 'no per_image_confusion' in capsys.readouterr().err


def test_eval_missing_mask_names_it(tmp_path):
    images, masks = write_set(tmp_path, [solid((1, 2, 3), 8, 8)] * 2,
                              [np.zeros((8, 8), np.uint8), None])
    with pytest.raises(eval_waste_seg.EvalWasteSegDataError, match='01.png'):
        eval_waste_seg.list_pairs(images, masks)


def test_eval_mask_size_mismatch(tmp_path, tiny):
    images, masks = write_set(tmp_path, [solid((1, 2, 3), 8, 8)], [np.zeros((8, 9), np.uint8)])
    with pytest.raises(eval_waste_seg.EvalWasteSegDataError, match='9x8'):
        eval_waste_seg.evaluate_dir(tiny, images, masks)


def test_eval_label_out_of_range(tmp_path, tiny):
    images, masks = write_set(tmp_path, [solid((1, 2, 3), 8, 8)], [np.full((8, 8), 7, np.uint8)])
    with pytest.raises(eval_waste_seg.EvalWasteSegDataError, match='label 7'):
        eval_waste_seg.evaluate_dir(tiny, images, masks)


def test_eval_cli_reports_errors(tmp_path, capsys):
    images, masks = write_set(tmp_path, [solid((1, 2, 3), 8, 8)], [None])
    args = argparse.Namespace(images=images, masks=masks, json=tmp_path / 'o.json',
                              model=write_tiny_model(tmp_path / 'm.onnx'), threads=1)
    assert eval_waste_seg.run(args) == 2
    assert 'no mask' in capsys.readouterr().err
