"""Export a fold's experts and gate to ONNX, check them against torch, write its moe.yaml.

Usage (after train_experts.py and train_gate.py):
    .venv/bin/python training/crack/export_onnx.py --run training/crack/runs/v3 --fold final \
        --out src/edge_perception/models/crack
    .venv/bin/python training/crack/export_onnx.py --run training/crack/runs/v3 --fold uav
        (default --out: RUN/FOLD/onnx; eval-crack --lodo-run RUN reads those)

Experts are exported (opset 17) with a sigmoid appended (output: crack probability) and dynamic
height and width (any multiple of the expert's pad_multiple: 16, or 32 for lite0_half); the gate
with a fixed 96 x 128 input. Each export is
checked on random inputs of two sizes: the largest |onnxruntime - torch| difference is printed and
must be < 1e-4; each file must be < 10 MB. The manifest gets the fold's calibrated thresholds
(RUN/FOLD/thresholds.json): `threshold` is the top-k one (the node's default strategy), and
`thresholds` lists every configuration's.
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
from nets import build_expert, count_parameters, GateCNN, pad_multiple  # noqa: E402
from train_gate import configurations, GATE_SIZE  # noqa: E402

MAX_BYTES = 10_000_000


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
    parser.add_argument('--run', default='training/crack/runs/v3')
    parser.add_argument('--fold', default='final')
    parser.add_argument('--out', default=None, help='default: RUN/FOLD/onnx')
    parser.add_argument('--experts', default='lite0_unet,lite0_s8,lite0_half')
    parser.add_argument('--default-expert', default='lite0_unet',
                        help='expert for strategy single')
    parser.add_argument('--k', type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    run = os.path.join(args.run, args.fold)
    out = args.out or os.path.join(run, 'onnx')
    os.makedirs(out, exist_ok=True)
    experts = args.experts.split(',')

    info = {}
    for name in experts:
        net = build_expert(name, pretrained=False)
        net.load_state_dict(torch.load(os.path.join(run, f'{name}.pt')))
        model = WithSigmoid(net).eval()
        path = os.path.join(out, f'{name}.onnx')
        export(model, path, torch.zeros(1, 3, 256, 256), dynamic=True)
        m = pad_multiple(name)
        diff = max_difference(model, path, [(1, 3, 384, -(-544 // m) * m), (1, 3, 160, 96)])
        info[name] = {'params': count_parameters(net), 'bytes': os.path.getsize(path),
                      'max_abs_diff_vs_torch': diff}
        print(f'{name}: {info[name]}')
        if diff > 1e-4:
            raise SystemExit(f'{name}: onnxruntime differs from torch by {diff}')
        if info[name]['bytes'] >= MAX_BYTES:
            raise SystemExit(f'{name}: {info[name]["bytes"]} bytes >= {MAX_BYTES}')
    gate = GateCNN(len(experts))
    gate.load_state_dict(torch.load(os.path.join(run, 'gate.pt')))
    path = os.path.join(out, 'gate.onnx')
    export(gate.eval(), path, torch.zeros(1, 3, *GATE_SIZE), dynamic=False)
    diff = max_difference(gate, path, [(1, 3, *GATE_SIZE)])
    info['gate'] = {'params': count_parameters(gate), 'bytes': os.path.getsize(path),
                    'max_abs_diff_vs_torch': diff}
    print(f'gate: {info["gate"]}')
    if diff > 1e-4:
        raise SystemExit(f'gate: onnxruntime differs from torch by {diff}')

    calibrated = json.load(open(os.path.join(run, 'thresholds.json')))
    thresholds = {c: calibrated[c]['threshold'] for c in configurations(experts, args.k)}
    write_manifest(os.path.join(out, 'moe.yaml'), experts, args.default_expert, thresholds,
                   args.k, args.fold)
    json.dump(info, open(os.path.join(run, 'export_summary.json'), 'w'), indent=1)
    return 0


def write_manifest(path, experts, default_expert, thresholds, k, fold):
    """Write the manifest the runtime (edge_perception.core.moe.CrackSegmenter) reads."""
    norm = f'{{mean: {list(MEAN)}, std: {list(STD)}}}'
    trained_on = 'all three crack sets (train splits)' if fold == 'final' else \
        f'LODO fold: every set but {fold}'
    lines = [
        '# Crack segmentation mixture of experts (edge_perception.core.moe.CrackSegmenter).',
        f'# Written by training/crack/export_onnx.py; trained on {trained_on}.',
        '# Paths are relative to this file. Swap in your own ONNX models by editing a copy.',
        '# expert input: pad_to_multiple: m  -> native resolution, padded to a multiple of m;',
        '#               size: [H, W]       -> resized to H x W and the output resized back.',
        '# normalisation: x = (rgb / 255 - mean) / std, RGB order, NCHW float32.',
        '# output: probability (sigmoid inside the model) or logits.',
        '# thresholds: per configuration, best mean per-set F1 on out-of-fold predictions of',
        '# surfaces the models were not trained on (train_gate.py);',
        '# threshold: the top-k one, used for configurations not listed.',
        'format: 1',
        f'default_expert: {default_expert}   # used by strategy single',
        f'threshold: {thresholds[f"topk(k={k})"]}',
        'thresholds:',
    ]
    lines += [f"  '{key}': {value}" for key, value in thresholds.items()]
    lines += ['experts:']
    for name in experts:
        lines += [f'  - name: {name}',
                  f'    file: {name}.onnx',
                  f'    input: {{pad_to_multiple: {pad_multiple(name)}}}',
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
