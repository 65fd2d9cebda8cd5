"""Fuse material classifiers into one ONNX file: the mean of their softmax, int8 weights.

Usage:
    python training/material/ensemble_material.py --member A.onnx --member B.onnx \
        --out OUT/material_effnet_lite0.onnx [--input-size 192] [--weights int8]

Why one file: `core.material.MaterialClassifier` loads one ONNX graph with one input and one
`logits` output, and the detector and segmentation nodes classify a frame's crops in one batch.
The fused graph keeps that contract: its input is the largest member input (or --input-size);
a member trained at a smaller size gets a bilinear Resize in the graph; its output is
log(mean_m softmax(logits_m)), whose softmax is the members' mean probability.

Why int8 weights: two EfficientNet-Lite0 members as float16 are 13.5 MB, over the 10 MB budget.
The pointwise convolution and linear weights (96 % of the parameters) are stored as int8 with a
symmetric float16 scale per 8 weights, followed in the graph by Cast, Mul and Reshape back to
float32; the stem and depthwise weights as float16 + Cast (see `int8_weights`). onnxruntime
folds those constant subgraphs when it loads the file, so compute stays float32 (unlike static
INT8 quantization of activations, which lost accuracy on belt crops; see the model card).
One-dimensional initializers (biases) stay float32.

Members are fp32 or fp16-weight (Cast-of-initializer) exports of `train_material_v2.py` with
the same class list; each member's metadata `input_size` gives its input size.
"""
import argparse
import json
from pathlib import Path
import shutil
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'src'))
from edge_perception.core import material as runtime  # noqa: E402, I100

OPSET = 17


def metadata(model):
    return {p.key: p.value for p in model.metadata_props}


def float_initializers(model):
    """Turn Cast(float16 initializer -> float32) pairs back into float32 initializers."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    kept_nodes, replaced = [], {}
    for node in graph.node:
        if (node.op_type == 'Cast' and len(node.input) == 1 and node.input[0] in inits
                and node.attribute[0].i == TensorProto.FLOAT):
            array = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
            replaced[node.input[0]] = numpy_helper.from_array(array, node.output[0])
        else:
            kept_nodes.append(node)
    if not replaced:
        return model
    new_inits = [replaced.get(i.name, i) for i in graph.initializer]
    del graph.initializer[:]
    graph.initializer.extend(new_inits)
    del graph.node[:]
    graph.node.extend(kept_nodes)
    return model


FP16_MIN_NORMAL = 6.104e-5


def int8_weights(model, group=8, min_fan_in=32):
    """Store float initializers with >= 2 dims as int8 with a float16 scale per `group` weights.

    The groups run along each output channel's fan-in (one scale per channel when the fan-in is
    not a multiple of `group`). Weights with a fan-in below `min_fan_in` (the stem and the
    depthwise convolutions: 3 x 3 or 5 x 5 per channel, 4 % of the parameters) stay float16.
    Measured on one member (val photos, mean over images of the largest probability change
    against float32): int8 everywhere, one scale per channel 0.023; these defaults 0.005;
    float16 everywhere 0.001. The stem and depthwise layers caused most of the error.
    """
    graph = model.graph
    nodes, inits = [], []
    for init in graph.initializer:
        if init.data_type != TensorProto.FLOAT or len(init.dims) < 2:
            inits.append(init)
            continue
        w = numpy_helper.to_array(init)
        fan_in = w[0].size
        if fan_in < min_fan_in:
            inits.append(numpy_helper.from_array(w.astype(np.float16), init.name + '_fp16'))
            nodes.append(helper.make_node('Cast', [init.name + '_fp16'], [init.name],
                                          to=TensorProto.FLOAT, name=init.name + '_cast'))
            continue
        size = group if group and fan_in % group == 0 else fan_in
        blocks = w.reshape(w.shape[0], fan_in // size, size)
        peak = np.abs(blocks).max(axis=2, keepdims=True)
        # float16 scales; a block of near-zero weights gets the smallest normal one.
        scale = np.maximum(peak / 127.0, FP16_MIN_NORMAL).astype(np.float16)
        q = np.clip(np.rint(blocks / scale.astype(np.float32)), -127, 127).astype(np.int8)
        shape = numpy_helper.from_array(np.array(w.shape, np.int64), init.name + '_shape')
        inits += [numpy_helper.from_array(q, init.name + '_int8'),
                  numpy_helper.from_array(scale, init.name + '_scale'), shape]
        nodes += [
            helper.make_node('Cast', [init.name + '_int8'], [init.name + '_q'],
                             to=TensorProto.FLOAT, name=init.name + '_cast'),
            helper.make_node('Cast', [init.name + '_scale'], [init.name + '_s'],
                             to=TensorProto.FLOAT, name=init.name + '_scast'),
            helper.make_node('Mul', [init.name + '_q', init.name + '_s'], [init.name + '_g'],
                             name=init.name + '_dequant'),
            helper.make_node('Reshape', [init.name + '_g', shape.name], [init.name],
                             name=init.name + '_reshape')]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    all_nodes = nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(all_nodes)
    return model


def load_member(path: Path, index: int):
    """(graph with every name prefixed, input size, class names, metadata) of one member."""
    model = onnx.load(str(path))
    meta = metadata(model)
    size = int(meta.get(runtime.METADATA_INPUT_SIZE, 0)) or int(
        model.graph.input[0].type.tensor_type.shape.dim[2].dim_value)
    names = json.loads(meta[runtime.METADATA_CLASS_NAMES])
    model = float_initializers(model)
    model = onnx.compose.add_prefix(model, f'm{index}_')
    return model, size, names, meta


def fuse(members, input_size=None, weights='int8', group=8):
    """Return the fused ModelProto of member files (see the module docstring)."""
    loaded = [load_member(Path(p), i) for i, p in enumerate(members)]
    class_names = loaded[0][2]
    for path, (_, _, names, _) in zip(members, loaded):
        if names != class_names:
            raise SystemExit(f'{path}: classes {names} differ from {class_names}')
    size = input_size or max(s for _, s, _, _ in loaded)
    nodes, inits, probs = [], [], []
    for i, (model, member_size, _, _) in enumerate(loaded):
        graph = model.graph
        member_input = graph.input[0].name
        if member_size != size:
            scales = numpy_helper.from_array(np.array([1.0, 1.0, member_size / size,
                                                       member_size / size], np.float32),
                                             f'm{i}_resize_scales')
            inits.append(scales)
            nodes.append(helper.make_node('Resize', ['image', '', scales.name], [member_input],
                                          mode='linear', name=f'm{i}_resize'))
        else:
            nodes.append(helper.make_node('Identity', ['image'], [member_input],
                                          name=f'm{i}_input'))
        nodes.extend(graph.node)
        inits.extend(graph.initializer)
        nodes.append(helper.make_node('Softmax', [graph.output[0].name], [f'm{i}_prob'],
                                      axis=1, name=f'm{i}_softmax'))
        probs.append(f'm{i}_prob')
    nodes.append(helper.make_node('Mean', probs, ['mean_prob'], name='mean_prob'))
    nodes.append(helper.make_node('Log', ['mean_prob'], ['logits'], name='log_mean_prob'))
    graph = helper.make_graph(
        nodes, 'material_ensemble',
        [helper.make_tensor_value_info('image', TensorProto.FLOAT, ['batch', 3, size, size])],
        [helper.make_tensor_value_info('logits', TensorProto.FLOAT,
                                       ['batch', len(class_names)])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', OPSET)],
                              producer_name='edge_perception ensemble_material.py')
    if weights == 'int8':
        model = int8_weights(model, group)
    onnx.checker.check_model(model)
    member_meta = [m for _, _, _, m in loaded]
    first = member_meta[0]
    meta = {runtime.METADATA_CLASS_NAMES: json.dumps(class_names),
            runtime.METADATA_INPUT_SIZE: str(size),
            'architecture': f'mean of the softmax of {len(members)} members: ' + '; '.join(
                m.get('architecture', Path(p).name) for p, m in zip(members, member_meta)),
            'input': first.get('input', 'float32 NCHW RGB in [0,1]'),
            'training_data': first.get('training_data', ''),
            'recipe': 'training/material/ensemble_material.py, weights ' + (
                f'int8 in groups of {group} (float16 where the fan-in is short)'
                if weights == 'int8' else weights),
            'output': 'logits = log(mean of member softmax)',
            'variant': f'ensemble-{len(members)}-{weights}-weights',
            'members': json.dumps([{'file': Path(p).name, 'input_size': s, **{
                k: v for k, v in m.items() if k in ('epoch', 'seed', 'init', 'recipe')}}
                for p, (_, s, _, m) in zip(members, loaded)])}
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--member', action='append', required=True, type=Path,
                        help='member ONNX file (repeat)')
    parser.add_argument('--out', required=True, type=Path)
    parser.add_argument('--input-size', type=int, default=0,
                        help='fused input size (default: the largest member input)')
    parser.add_argument('--weights', choices=('int8', 'fp32'), default='int8')
    parser.add_argument('--group', type=int, default=8,
                        help='int8 weights: weights per scale along the fan-in (0: per channel)')
    args = parser.parse_args(argv)
    model = fuse(args.member, args.input_size or None, args.weights, args.group)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(args.out))
    shutil.copyfile(runtime.classes_path_for(args.member[0]), runtime.classes_path_for(args.out))
    runtime.MaterialClassifier(args.out)   # the real loader must accept it
    print(f'{args.out}: {args.out.stat().st_size / 1e6:.2f} MB, {len(args.member)} members, '
          f'{args.weights} weights')
    return 0


if __name__ == '__main__':
    sys.exit(main())
