"""Top-K mixture of experts: fusion equations, and the segmenter on closed-form ONNX models.

The ONNX models (constant or per-pixel experts, a constant gate) are built here with onnx.helper,
so every output is known exactly and the real onnxruntime runs them.
"""
import math
import os

from edge_perception.core.moe import (
    config_key, CrackModelError, CrackSegmenter, fuse, gate_weights, manifest_threshold,
    MoEInputError, select_experts)
import numpy as np
import onnx
from onnx import helper, TensorProto
import pytest

# --- pure fusion functions --------------------------------------------------------------------


def test_gate_weights_is_softmax():
    w = gate_weights([0.0, math.log(2.0), math.log(5.0)])
    np.testing.assert_allclose(w, [1 / 8, 2 / 8, 5 / 8])
    np.testing.assert_allclose(gate_weights([1000.0, 1000.0]), [0.5, 0.5])   # no overflow
    batch = gate_weights([[0.0, 0.0], [0.0, math.log(3.0)]])
    np.testing.assert_allclose(batch, [[0.5, 0.5], [0.25, 0.75]])


def test_select_hard_soft_topk_on_known_weights():
    w = np.array([0.1, 0.5, 0.15, 0.25])
    idx, fw = select_experts(w, 'hard')
    assert idx.tolist() == [1] and fw.tolist() == [1.0]
    idx, fw = select_experts(w, 'soft')
    assert idx.tolist() == [1, 3, 2, 0]
    np.testing.assert_allclose(fw, [0.5, 0.25, 0.15, 0.1])
    idx, fw = select_experts(w, 'topk', k=2)        # eq. 7: g_i / sum over the top 2
    assert idx.tolist() == [1, 3]
    np.testing.assert_allclose(fw, [0.5 / 0.75, 0.25 / 0.75])
    idx, fw = select_experts(w, 'topk', k=3)
    assert idx.tolist() == [1, 3, 2]
    np.testing.assert_allclose(fw, [0.5 / 0.9, 0.25 / 0.9, 0.15 / 0.9])
    # k = 1 is hard, k = n is soft.
    assert select_experts(w, 'topk', k=1)[0].tolist() == select_experts(w, 'hard')[0].tolist()
    np.testing.assert_allclose(select_experts(w, 'topk', k=4)[1], select_experts(w, 'soft')[1])


def test_select_ties_prefer_lower_index():
    idx, fw = select_experts([0.25, 0.25, 0.25, 0.25], 'topk', k=2)
    assert idx.tolist() == [0, 1] and fw.tolist() == [0.5, 0.5]


def test_fuse_weighted_sum():
    p1 = np.full((2, 3), 0.2, np.float32)
    p2 = np.array([[1, 0, 1], [0, 1, 0]], np.float32)
    fused = fuse([p1, p2], [0.75, 0.25])
    np.testing.assert_allclose(fused, 0.75 * p1 + 0.25 * p2, rtol=1e-6)
    assert fused.dtype == np.float32


@pytest.mark.parametrize('call', [
    lambda: select_experts([0.5, 0.6], 'soft'),               # does not sum to 1
    lambda: select_experts([1.5, -0.5], 'soft'),              # negative
    lambda: select_experts([0.5, 0.5], 'topk', k=3),
    lambda: select_experts([0.5, 0.5], 'topk', k=0),
    lambda: select_experts([0.5, 0.5], 'best'),
    lambda: select_experts([], 'soft'),
    lambda: fuse([np.zeros((2, 2))], [0.5, 0.5]),
    lambda: fuse([np.zeros((2, 2)), np.zeros((2, 3))], [0.5, 0.5]),
    lambda: gate_weights([np.nan, 1.0]),
])
def test_fusion_rejects_bad_input(call):
    with pytest.raises(MoEInputError):
        call()


# --- closed-form ONNX models ------------------------------------------------------------------

def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def conv_expert(path, weights, bias):
    """Expert: sigmoid(1x1 conv of the normalised image): per-pixel, any H x W."""
    w = helper.make_tensor('w', TensorProto.FLOAT, [1, 3, 1, 1], list(weights))
    b = helper.make_tensor('b', TensorProto.FLOAT, [1], [bias])
    graph = helper.make_graph(
        [helper.make_node('Conv', ['image', 'w', 'b'], ['logit']),
         helper.make_node('Sigmoid', ['logit'], ['output'])],
        'expert',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT, [1, 3, 'h', 'w'])],
        [helper.make_tensor_value_info('output', TensorProto.FLOAT, [1, 1, 'h', 'w'])],
        [w, b])
    _save(graph, path)


def constant_expert(path, probability):
    """Expert whose output is `probability` everywhere."""
    conv_expert(path, (0.0, 0.0, 0.0), math.log(probability / (1.0 - probability)))


def constant_gate(path, logits, size=(12, 16)):
    """Gate that outputs fixed logits whatever the image."""
    n = len(logits)
    w = helper.make_tensor('w', TensorProto.FLOAT, [3, n], [0.0] * 3 * n)
    b = helper.make_tensor('b', TensorProto.FLOAT, [n], list(logits))
    graph = helper.make_graph(
        [helper.make_node('GlobalAveragePool', ['image'], ['pooled']),
         helper.make_node('Flatten', ['pooled'], ['flat']),
         helper.make_node('Gemm', ['flat', 'w', 'b'], ['output'])],
        'gate',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT, [1, 3, *size])],
        [helper.make_tensor_value_info('output', TensorProto.FLOAT, [1, n])],
        [w, b])
    _save(graph, path)


def write_manifest(folder, experts, gate_logits, gate_order=None, threshold=0.5,
                   thresholds=None):
    """experts: list of (name, input spec string); models must already be in folder."""
    lines = ['format: 1', f'default_expert: {experts[0][0]}', f'threshold: {threshold}']
    if thresholds:
        lines += ['thresholds:'] + [f"  '{key}': {v}" for key, v in thresholds.items()]
    lines += ['experts:']
    for name, spec in experts:
        lines += [f'  - name: {name}', f'    file: {name}.onnx', f'    input: {spec}',
                  '    normalisation: {mean: [0.0, 0.0, 0.0], std: [1.0, 1.0, 1.0]}']
    order = gate_order or [n for n, _ in experts]
    lines += ['gate:', '  file: gate.onnx', '  input: {size: [12, 16]}',
              f'  experts: [{", ".join(order)}]']
    constant_gate(os.path.join(folder, 'gate.onnx'), gate_logits)
    path = os.path.join(folder, 'moe.yaml')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


PROBS = {'a': 0.9, 'b': 0.6, 'c': 0.2, 'd': 0.05}
LOGITS = [math.log(0.1), math.log(0.5), math.log(0.15), math.log(0.25)]   # softmax: these


@pytest.fixture
def constant_moe(tmp_path):
    for name, p in PROBS.items():
        constant_expert(tmp_path / f'{name}.onnx', p)
    return write_manifest(str(tmp_path), [(n, '{pad_to_multiple: 16}') for n in PROBS], LOGITS)


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)


@pytest.mark.parametrize('strategy, k, used, expected', [
    ('hard', 2, ['b'], 0.6),
    ('topk', 2, ['b', 'd'], (0.5 * 0.6 + 0.25 * 0.05) / 0.75),
    ('topk', 3, ['b', 'd', 'c'], (0.5 * 0.6 + 0.25 * 0.05 + 0.15 * 0.2) / 0.9),
    ('soft', 2, ['b', 'd', 'c', 'a'], 0.1 * 0.9 + 0.5 * 0.6 + 0.15 * 0.2 + 0.25 * 0.05),
    ('single', 2, ['a'], 0.9),
])
def test_segmenter_strategies_follow_equations(constant_moe, image, strategy, k, used, expected):
    seg = CrackSegmenter(constant_moe, strategy=strategy, k=k, intra_op_num_threads=1)
    r = seg.segment(image)
    assert r.experts_used == used
    assert sum(r.expert_weights) == pytest.approx(1.0)
    assert r.prob.shape == (37, 53) and r.mask.shape == (37, 53)
    np.testing.assert_allclose(r.prob, expected, rtol=1e-5)
    assert r.mask.all() == (expected >= 0.5) and r.mask.any() == (expected >= 0.5)
    assert r.inference_ms > 0


def test_segmenter_expert_subset_renormalises_gate(constant_moe, image):
    seg = CrackSegmenter(constant_moe, strategy='topk', k=2, experts=['a', 'c'])
    r = seg.segment(image)
    assert r.experts_used == ['c', 'a']
    np.testing.assert_allclose(r.expert_weights, [0.6, 0.4])     # 0.15 : 0.1
    np.testing.assert_allclose(r.prob, 0.6 * 0.2 + 0.4 * 0.9, rtol=1e-5)


def test_gate_output_order_from_manifest(tmp_path, image):
    for name, p in (('a', 0.9), ('b', 0.1)):
        constant_expert(tmp_path / f'{name}.onnx', p)
    manifest = write_manifest(str(tmp_path), [('a', '{pad_to_multiple: 8}'),
                                              ('b', '{pad_to_multiple: 8}')],
                              [5.0, -5.0], gate_order=['b', 'a'])   # gate favours b
    assert CrackSegmenter(manifest, strategy='hard').segment(image).experts_used == ['b']


@pytest.mark.parametrize('spec', ['{pad_to_multiple: 16}', '{size: [64, 64]}'])
@pytest.mark.parametrize('shape', [(37, 53), (1, 1), (16, 16), (5, 300), (161, 7)])
def test_any_input_size_maps_back_pixel_for_pixel(tmp_path, spec, shape):
    """Expert = sigmoid(4 (red - 0.5)): per pixel, so the output must match the input's layout."""
    conv_expert(tmp_path / 'red.onnx', (4.0, 0.0, 0.0), -2.0)
    manifest = write_manifest(str(tmp_path), [('red', spec)], [0.0])
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    red = ((rows * 7 + cols * 3) % 256).astype(np.uint8) if spec.startswith('{pad') else \
        np.full(shape, 200, np.uint8)           # resizing blurs, so the resized case is flat
    rgb = np.stack([red, np.zeros_like(red), np.full_like(red, 255)], axis=2)
    r = CrackSegmenter(manifest, strategy='single').segment(rgb)
    expected = 1.0 / (1.0 + np.exp(-(4.0 * red / 255.0 - 2.0)))
    assert r.prob.shape == shape
    np.testing.assert_allclose(r.prob, expected, atol=1e-5)


def test_max_side_downscales_and_returns_input_size(tmp_path):
    conv_expert(tmp_path / 'red.onnx', (4.0, 0.0, 0.0), -2.0)
    manifest = write_manifest(str(tmp_path), [('red', '{pad_to_multiple: 16}')], [0.0])
    rgb = np.zeros((300, 500, 3), np.uint8)
    rgb[:, 250:, 0] = 255
    r = CrackSegmenter(manifest, strategy='single', max_side=100).segment(rgb)
    assert r.prob.shape == (300, 500)
    assert r.mask[:, 270:].all() and not r.mask[:, :230].any()


def test_config_keys_and_manifest_thresholds():
    assert config_key('single', expert='a') == 'single:a'
    assert config_key('topk', 3) == 'topk(k=3)'
    assert config_key('hard') == 'hard' and config_key('soft', 5) == 'soft'
    spec = {'threshold': 0.4, 'thresholds': {'hard': 0.3, 'single:a': 0.7}}
    assert manifest_threshold(spec, 'hard') == 0.3
    assert manifest_threshold(spec, 'single:a') == 0.7
    assert manifest_threshold(spec, 'soft') == 0.4           # not listed: the manifest's
    assert manifest_threshold({}, 'soft') == 0.5             # nothing: 0.5
    with pytest.raises(CrackModelError, match='thresholds'):
        manifest_threshold({'thresholds': [0.3]}, 'hard')


@pytest.mark.parametrize('strategy, k, expert, expected', [
    ('single', 2, None, 0.7),          # default expert a
    ('single', 2, 'b', 0.35),          # not listed: the manifest's threshold
    ('hard', 2, None, 0.3),
    ('topk', 2, None, 0.45),
    ('topk', 3, None, 0.35),           # k = 3 not listed
])
def test_per_configuration_thresholds_from_manifest(tmp_path, strategy, k, expert, expected):
    for name, p in PROBS.items():
        constant_expert(tmp_path / f'{name}.onnx', p)
    manifest = write_manifest(str(tmp_path), [(n, '{pad_to_multiple: 16}') for n in PROBS],
                              LOGITS, threshold=0.35,
                              thresholds={'single:a': 0.7, 'hard': 0.3, 'topk(k=2)': 0.45})
    seg = CrackSegmenter(manifest, strategy=strategy, k=k, expert=expert)
    assert seg.threshold == pytest.approx(expected)
    # An explicit threshold wins over the manifest's.
    assert CrackSegmenter(manifest, strategy=strategy, k=k, expert=expert,
                          threshold=0.55).threshold == 0.55
    # The mask is the fused probability at that threshold: hard uses b (0.6 everywhere).
    if strategy == 'hard':
        assert CrackSegmenter(manifest, strategy='hard').segment(
            np.zeros((8, 8, 3), np.uint8)).mask.all()


def test_expert_probabilities_are_every_expert_at_input_size(constant_moe, image):
    seg = CrackSegmenter(constant_moe, strategy='hard', max_side=32)
    maps = seg.expert_probabilities(image)
    assert list(maps) == list(PROBS)
    for name, p in PROBS.items():
        assert maps[name].shape == image.shape[:2]
        np.testing.assert_allclose(maps[name], p, rtol=1e-5)


# --- bad input ---------------------------------------------------------------------------------

def test_missing_model_file_named(constant_moe):
    os.remove(os.path.join(os.path.dirname(constant_moe), 'c.onnx'))
    with pytest.raises(CrackModelError, match=r'c\.onnx'):
        CrackSegmenter(constant_moe, strategy='soft')


def test_corrupt_model_file_named(constant_moe):
    path = os.path.join(os.path.dirname(constant_moe), 'gate.onnx')
    with open(path, 'wb') as f:
        f.write(b'not an onnx model')
    with pytest.raises(CrackModelError, match=r'gate\.onnx'):
        CrackSegmenter(constant_moe, strategy='topk')


def test_missing_manifest(tmp_path):
    with pytest.raises(CrackModelError, match='manifest not found'):
        CrackSegmenter(str(tmp_path / 'nope.yaml'))


def test_manifest_gate_experts_must_match(tmp_path):
    constant_expert(tmp_path / 'a.onnx', 0.5)
    manifest = write_manifest(str(tmp_path), [('a', '{pad_to_multiple: 16}')], [0.0],
                              gate_order=['z'])
    with pytest.raises(CrackModelError, match='gate experts'):
        CrackSegmenter(manifest, strategy='hard')


@pytest.mark.parametrize('kwargs', [
    {'strategy': 'best'}, {'strategy': 'topk', 'k': 5}, {'strategy': 'topk', 'k': 0},
    {'experts': ['zz']}, {'strategy': 'single', 'expert': 'zz'}, {'threshold': 1.5},
    {'intra_op_num_threads': -1}, {'max_side': 4},
])
def test_bad_constructor_arguments(constant_moe, kwargs):
    with pytest.raises(ValueError):
        CrackSegmenter(constant_moe, **kwargs)


@pytest.mark.parametrize('bad', [
    np.zeros((10, 10), np.uint8), np.zeros((10, 10, 4), np.uint8),
    np.zeros((10, 10, 3), np.float32), np.zeros((0, 10, 3), np.uint8)])
def test_bad_images_rejected(constant_moe, bad):
    with pytest.raises(MoEInputError):
        CrackSegmenter(constant_moe, strategy='hard').segment(bad)
