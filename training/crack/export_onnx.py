"""Export the final experts and gate to ONNX, check them against torch, write moe.yaml.

Usage:
    .venv/bin/python training/crack/export_onnx.py --run training/crack/runs/v1 \
        --out src/edge_perception/models/crack

Experts are exported with a sigmoid appended (output: crack probability) and dynamic height and
width (any multiple of 16); the gate with a fixed 96 x 128 input. Each export is checked on random
inputs of two sizes: the largest |onnxruntime - torch| difference is printed and must be < 1e-4.
"""
import argparse
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from data import MEAN, STD  # noqa: E402, I100
from nets import build_expert, count_parameters, GateCNN  # noqa: E402
from train_gate import GATE_SIZE  # noqa: E402

PAD_MULTIPLE = 16


class WithSigmoid(nn.Module):
    """Expert logits -> probabilities, so the ONNX file outputs what the runtime fuses."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        """Crack probability (N, 1, H, W)."""
        return torch.sigmoid(self.net(x))


def export(model, path, example, dynamic):
    """Export model to path (opset 17) and return it reloaded and checked by onnx."""
    model.eval()
    axes = {'image': {2: 'height', 3: 'width'}, 'output': {2: 'height', 3: 'width'}} \
        if dynamic else None
    torch.onnx.export(model, example, path, input_names=['image'], output_names=['output'],
                      opset_version=17, dynamic_axes=axes, dynamo=False)
    onnx.checker.check_model(onnx.load(path))


def max_difference(model, path, shapes):
    """Largest |onnxruntime - torch| over random inputs of the given shapes."""
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    worst = 0.0
    rng = np.random.default_rng(0)
    for shape in shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = session.run(None, {'image': x})[0]
        if got.shape != ref.shape:
            raise SystemExit(f'{path}: shape {got.shape} != torch {ref.shape}')
        worst = max(worst, float(np.abs(got - ref).max()))
    return worst


def main(argv=None):
    """Export, verify, write moe.yaml."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--run', default='training/crack/runs/v1')
    parser.add_argument('--out', default='src/edge_perception/models/crack')
    parser.add_argument('--default-expert', default=None,
                        help='expert for strategy single (default: best OOF IoU)')
    parser.add_argument('--oof-json', default='training/crack/oof_results.json')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)
    split = json.load(open(os.path.join(args.run, 'split.json')))
    experts = split['experts']

    info = {}
    for name in experts:
        net = build_expert(name)
        net.load_state_dict(torch.load(os.path.join(args.run, f'final_{name}.pt')))
        model = WithSigmoid(net).eval()
        path = os.path.join(args.out, f'{name}.onnx')
        export(model, path, torch.zeros(1, 3, 256, 256), dynamic=True)
        diff = max_difference(model, path, [(1, 3, 384, 544), (1, 3, 160, 96)])
        info[name] = {'params': count_parameters(net), 'bytes': os.path.getsize(path),
                      'max_abs_diff_vs_torch': diff}
        print(f'{name}: {info[name]}')
        if diff > 1e-4:
            raise SystemExit(f'{name}: onnxruntime differs from torch by {diff}')
    gate = GateCNN(len(experts))
    gate.load_state_dict(torch.load(os.path.join(args.run, 'gate_final.pt')))
    path = os.path.join(args.out, 'gate.onnx')
    export(gate.eval(), path, torch.zeros(1, 3, *GATE_SIZE), dynamic=False)
    diff = max_difference(gate, path, [(1, 3, *GATE_SIZE)])
    info['gate'] = {'params': count_parameters(gate), 'bytes': os.path.getsize(path),
                    'max_abs_diff_vs_torch': diff}
    print(f'gate: {info["gate"]}')
    if diff > 1e-4:
        raise SystemExit(f'gate: onnxruntime differs from torch by {diff}')

    default_expert = args.default_expert
    if default_expert is None and os.path.exists(args.oof_json):
        res = json.load(open(args.oof_json))['results']
        default_expert = max(experts, key=lambda e: res[f'single:{e}']['pooled']['iou'])
    default_expert = default_expert or experts[0]
    write_manifest(os.path.join(args.out, 'moe.yaml'), experts, default_expert)
    json.dump(info, open(os.path.join(args.run, 'export_summary.json'), 'w'), indent=1)
    return 0


def write_manifest(path, experts, default_expert):
    """Write the manifest the runtime (edge_perception.core.moe.CrackSegmenter) reads."""
    norm = f'{{mean: {list(MEAN)}, std: {list(STD)}}}'
    lines = [
        '# Crack segmentation mixture of experts (edge_perception.core.moe.CrackSegmenter).',
        '# Paths are relative to this file. Swap in your own ONNX models by editing a copy.',
        '# expert input: pad_to_multiple: m  -> native resolution, padded to a multiple of m;',
        '#               size: [H, W]       -> resized to H x W and the output resized back.',
        '# normalisation: x = (rgb / 255 - mean) / std, RGB order, NCHW float32.',
        '# output: probability (sigmoid inside the model) or logits.',
        'format: 1',
        f'default_expert: {default_expert}   # used by strategy single',
        'threshold: 0.5',
        'experts:',
    ]
    for name in experts:
        lines += [f'  - name: {name}',
                  f'    file: {name}.onnx',
                  f'    input: {{pad_to_multiple: {PAD_MULTIPLE}}}',
                  f'    normalisation: {norm}',
                  '    output: probability']
    lines += ['gate:',
              '  file: gate.onnx',
              f'  input: {{size: [{GATE_SIZE[0]}, {GATE_SIZE[1]}]}}',
              f'  normalisation: {norm}',
              f'  experts: [{", ".join(experts)}]   # order of the gate outputs (logits)']
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    sys.exit(main())
