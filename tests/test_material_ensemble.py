"""training/material/ensemble_material.py: members fused into one ONNX file, run by onnxruntime.

Members are tiny hand-built classifiers with closed-form outputs: logits = W2 relu(W1 mean_rgb),
with random but fixed weights; W2 is stored as a Gemm weight of shape (6, 64), so its fan-in
(64) is long enough for int8 groups. The fused graph must give log(mean of the members'
softmax) through the real loader (core.material.MaterialClassifier).
"""
import json
from pathlib import Path
import sys

from edge_perception.core.material import MaterialClassifier, softmax
import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto
import onnxruntime as ort
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'training' / 'material'))
import ensemble_material  # noqa: E402, I100

CLASSES = ['cardboard', 'glass', 'metal', 'paper', 'plastic', 'trash']


def member_weights(seed):
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 2, (3, 64)).astype(np.float32),
            rng.normal(0, 0.5, (6, 64)).astype(np.float32))


def write_member(path, seed, input_size, classes=CLASSES, fp16=False):
    """Write the closed-form member described in the module docstring; return its path."""
    w1, w2 = member_weights(seed)
    inits = [numpy_helper.from_array(w1, 'w1'), numpy_helper.from_array(w2, 'w2')]
    nodes = [helper.make_node('ReduceMean', ['image'], ['mean'], axes=[2, 3], keepdims=0),
             helper.make_node('MatMul', ['mean', 'w1'], ['hidden']),
             helper.make_node('Relu', ['hidden'], ['act']),
             helper.make_node('Gemm', ['act', 'w2'], ['logits'], transB=1)]
    if fp16:   # as train_material_v2.fp16_weights stores them
        inits = [numpy_helper.from_array(w1.astype(np.float16), 'w1_fp16'),
                 numpy_helper.from_array(w2.astype(np.float16), 'w2_fp16')]
        nodes = [helper.make_node('Cast', ['w1_fp16'], ['w1'], to=TensorProto.FLOAT),
                 helper.make_node('Cast', ['w2_fp16'], ['w2'], to=TensorProto.FLOAT)] + nodes
    graph = helper.make_graph(
        nodes, 'member',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT,
                                       ['batch', 3, input_size, input_size])],
        [helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['batch', len(classes)])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 17)])
    model.ir_version = 8
    helper.set_model_props(model, {'class_names': json.dumps(list(classes)),
                                   'input_size': str(input_size), 'seed': str(seed)})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    path.with_name(path.name + '.classes.txt').write_text('\n'.join(classes) + '\n')
    return path


def member_probabilities(seed, images):
    """Compute one member in closed form on N x 3 x S x S images (the mean is size-free)."""
    w1, w2 = member_weights(seed)
    hidden = np.maximum(images.mean(axis=(2, 3)) @ w1, 0)
    return softmax(hidden @ w2.T)


def run(path, images):
    session = ort.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    return session.run(None, {'image': images})[0]


@pytest.fixture
def images():
    return np.random.default_rng(7).random((5, 3, 16, 16)).astype(np.float32)


def test_fused_output_is_log_of_the_members_mean_probability(tmp_path, images):
    a = write_member(tmp_path / 'a.onnx', 1, 16)
    b = write_member(tmp_path / 'b.onnx', 2, 8)     # smaller input: resized inside the graph
    out = tmp_path / 'fused.onnx'
    assert ensemble_material.main(['--member', str(a), '--member', str(b), '--out', str(out),
                                   '--weights', 'fp32']) == 0
    expected = (member_probabilities(1, images) + member_probabilities(2, images)) / 2
    np.testing.assert_allclose(np.exp(run(out, images)), expected, atol=1e-5)
    metadata = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(metadata['class_names']) == CLASSES
    assert metadata['input_size'] == '16'
    assert [m['input_size'] for m in json.loads(metadata['members'])] == [16, 8]
    classifier = MaterialClassifier(out)           # the real loader accepts it
    assert classifier.input_size == 16 and classifier.class_names == CLASSES


def test_int8_weights_are_stored_as_int8_and_stay_close(tmp_path, images):
    a = write_member(tmp_path / 'a.onnx', 1, 16)
    b = write_member(tmp_path / 'b.onnx', 2, 16)
    fp32, int8 = tmp_path / 'fp32.onnx', tmp_path / 'int8.onnx'
    ensemble_material.main(['--member', str(a), '--member', str(b), '--out', str(fp32),
                            '--weights', 'fp32'])
    ensemble_material.main(['--member', str(a), '--member', str(b), '--out', str(int8)])
    stored = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(int8)).graph.initializer}
    # W2 (fan-in 64): int8 in groups of 8, one float16 scale each; W1 (fan-in 64 as stored,
    # shape 3 x 64) likewise; no float32 copy of either is left in the file.
    assert stored['m0_w2_int8'].dtype == np.int8 and stored['m0_w2_int8'].shape == (6, 8, 8)
    assert stored['m0_w2_scale'].dtype == np.float16
    assert 'm0_w2' not in stored and 'm1_w1' not in stored
    p32, p8 = np.exp(run(fp32, images)), np.exp(run(int8, images))
    assert np.abs(p32 - p8).max() < 0.01
    assert (p32.argmax(1) == p8.argmax(1)).all()


def test_short_fan_in_weights_stay_float16(tmp_path):
    member = tmp_path / 'a.onnx'
    write_member(member, 1, 16)
    model = ensemble_material.fuse([member], weights='int8', group=8)
    stored = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    model_small = ensemble_material.int8_weights(
        onnx.load(str(member)), group=8, min_fan_in=100)
    small = {i.name: numpy_helper.to_array(i) for i in model_small.graph.initializer}
    assert stored['m0_w2_int8'].dtype == np.int8
    assert small['w2_fp16'].dtype == np.float16 and 'w2_int8' not in small


def test_float16_members_are_read_exactly(tmp_path, images):
    a16 = write_member(tmp_path / 'a16.onnx', 1, 16, fp16=True)
    out = tmp_path / 'fused.onnx'
    ensemble_material.main(['--member', str(a16), '--out', str(out), '--weights', 'fp32'])
    np.testing.assert_allclose(np.exp(run(out, images)), softmax(run(a16, images)), atol=1e-6)


def test_members_with_other_classes_are_refused(tmp_path):
    a = write_member(tmp_path / 'a.onnx', 1, 16)
    b = write_member(tmp_path / 'b.onnx', 2, 16, classes=CLASSES[::-1])
    with pytest.raises(SystemExit, match='differ'):
        ensemble_material.fuse([a, b])
