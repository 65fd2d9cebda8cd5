"""The shipped crack models: load with the real onnxruntime and segment the bundled samples.

The five samples (DeepCrack, research/education use) were held out of the training of the shipped
final experts and gate (training/crack/train_experts.py --holdout-dir), so these are held-out
figures. Floors are the values measured when the models were exported (see MODEL_CARD.md), minus
a margin of about 0.08 IoU for onnxruntime/platform differences; they catch a broken export,
pre-processing or fusion, not small regressions.
"""
import json
from pathlib import Path

from edge_perception.core.crack import crack_geometry, metrics_from_counts, segmentation_metrics
from edge_perception.core.moe import CrackSegmenter, default_manifest_path
import numpy as np
import onnx
from PIL import Image
import pytest
import yaml

MODEL_DIR = Path(default_manifest_path()).parent
SAMPLES = Path(__file__).resolve().parents[1] / 'src' / 'edge_perception' / 'data' / 'samples' \
    / 'crack'

# Pooled crack-class IoU on the 5 samples: (measured with `eval-crack --compare`, floor), each
# strategy at its manifest threshold (calibrated on out-of-fold predictions, not on these
# samples). 'single' is the manifest's default expert (lite0_unet). v3 experts (issue 8); v2
# measured 0.678 / 0.677 / 0.665 / 0.665 and v1 0.613 / 0.635 / 0.638 / 0.641 here.
IOU_FLOORS = {
    ('single', None): (0.678, 0.60),
    ('hard', None): (0.673, 0.59),
    ('soft', None): (0.679, 0.60),
    ('topk', 2): (0.680, 0.60),
}


def load_samples():
    pairs = []
    for image_path in sorted((SAMPLES / 'images').glob('*.jpg')):
        with Image.open(image_path) as image:
            rgb = np.asarray(image.convert('RGB'))
        with Image.open(SAMPLES / 'masks' / (image_path.stem + '.png')) as mask:
            gt = np.asarray(mask.convert('L')) > 127
        pairs.append((image_path.stem, rgb, gt))
    return pairs


@pytest.fixture(scope='module')
def samples():
    pairs = load_samples()
    assert len(pairs) == 5
    return pairs


def pooled_iou(segmenter, samples):
    counts = np.zeros(3)
    for _, rgb, gt in samples:
        result = segmenter.segment(rgb)
        assert result.prob.shape == gt.shape and result.mask.dtype == bool
        assert 0.0 <= result.prob.min() and result.prob.max() <= 1.0
        m = segmentation_metrics(result.mask, gt)
        counts += (m['tp'], m['fp'], m['fn'])
    return metrics_from_counts(*counts)['iou']


def test_manifest_lists_existing_small_opset17_models():
    spec = yaml.safe_load((MODEL_DIR / 'moe.yaml').read_text())
    files = [e['file'] for e in spec['experts']] + [spec['gate']['file']]
    assert len(spec['experts']) >= 2 and spec['default_expert'] in [
        e['name'] for e in spec['experts']]
    for name in files:
        path = MODEL_DIR / name
        assert path.stat().st_size < 10_000_000, name      # issue 8: each file < 10 MB
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
        assert max(op.version for op in model.opset_import if op.domain in ('', 'ai.onnx')) == 17
    # Thresholds calibrated on validation data, one per configuration, all in (0, 1).
    assert 0 < spec['threshold'] < 1
    assert all(0 < t < 1 for t in spec['thresholds'].values())
    assert {'hard', 'soft', 'topk(k=2)'} <= set(spec['thresholds'])


@pytest.mark.parametrize('strategy, k', list(IOU_FLOORS))
def test_shipped_models_segment_samples_above_floor(samples, strategy, k):
    measured, floor = IOU_FLOORS[(strategy, k)]
    segmenter = CrackSegmenter(strategy=strategy, k=k or 2, intra_op_num_threads=1)
    iou = pooled_iou(segmenter, samples)
    assert iou >= floor, f'{strategy}: IoU {iou:.3f} < floor {floor} (measured {measured})'


def test_topk_runs_two_experts_with_gate_weights(samples):
    segmenter = CrackSegmenter(strategy='topk', k=2, intra_op_num_threads=1)
    result = segmenter.segment(samples[0][1])
    assert len(result.experts_used) == 2
    assert sum(result.expert_weights) == pytest.approx(1.0)
    assert set(result.gate_weights) == set(segmenter.manifest_experts)
    top2 = sorted(result.gate_weights, key=result.gate_weights.get, reverse=True)[:2]
    assert result.experts_used == top2


def test_portrait_and_odd_sizes(samples):
    """A transposed (portrait) image segments to the transposed result of the landscape one."""
    segmenter = CrackSegmenter(strategy='single', intra_op_num_threads=1)
    _, rgb, gt = samples[2]
    landscape = segmenter.segment(rgb).mask
    portrait = segmenter.segment(np.ascontiguousarray(rgb.transpose(1, 0, 2))).mask
    assert portrait.shape == gt.T.shape
    # Convolutions are not exactly transpose-symmetric; the masks must still agree closely.
    assert segmentation_metrics(portrait.T, landscape)['iou'] > 0.85
    crop = segmenter.segment(np.ascontiguousarray(rgb[3:300, 5:401]))
    assert crop.mask.shape == (297, 396)


def test_predicted_geometry_close_to_ground_truth(samples):
    """Max width within 3.5 px on every sample, total skeleton length within 25 %.

    Measured at export (v2): max width off by at most 3.2 px (IMG12-1, 6.2 px predicted for a
    3 px crack: the v2 masks are wider on thin cracks); total length 5088 px vs 5476 px in the
    ground truth (-7 %). Lengths are not checked per image (v1 found only 36 % of IMG12-1's
    length, v2 92 %), see MODEL_CARD.md.
    """
    segmenter = CrackSegmenter(strategy='topk', k=2, intra_op_num_threads=1)
    predicted_length = reference_length = 0.0
    for stem, rgb, gt in samples:
        predicted = crack_geometry(segmenter.segment(rgb).mask)
        reference = crack_geometry(gt)
        assert abs(predicted.max_width_px - reference.max_width_px) <= 3.5, stem
        predicted_length += predicted.length_px
        reference_length += reference.length_px
    assert abs(predicted_length - reference_length) <= 0.25 * reference_length


def test_eval_crack_cli_on_samples(tmp_path):
    from edge_perception.cli import main

    out = tmp_path / 'eval.json'
    code = main(['eval-crack', '--images', str(SAMPLES / 'images'), '--masks',
                 str(SAMPLES / 'masks'), '--json', str(out), '--strategy', 'topk', '--k', '2',
                 '--threads', '1'])
    assert code == 0
    report = json.loads(out.read_text())
    result = report['results']['topk(k=2)']
    assert report['images'] == 5 and len(report['per_image']['topk(k=2)']) == 5
    assert result['pooled']['iou'] >= IOU_FLOORS[('topk', 2)][1]
    # A tolerance can only forgive: the 2 px figures are at least the strict ones.
    assert result['pooled_tol2px']['f1'] >= result['pooled']['f1']
    assert sum(result['counts'][k] for k in ('tp', 'fn')) == sum(
        int((np.asarray(Image.open(p).convert('L')) > 127).sum())
        for p in (SAMPLES / 'masks').glob('*.png'))


def test_eval_crack_cli_missing_masks(tmp_path):
    from edge_perception.cli import main

    code = main(['eval-crack', '--images', str(SAMPLES / 'images'), '--masks', str(tmp_path),
                 '--json', str(tmp_path / 'x.json')])
    assert code == 2 and not (tmp_path / 'x.json').exists()


def test_bench_crack_cli_reports_every_configuration(tmp_path):
    from edge_perception.cli import main

    out = tmp_path / 'bench.json'
    assert main(['bench-crack', '--size', '64', '--frames', '2', '--threads', '1',
                 '--json', str(out)]) == 0
    report = json.loads(out.read_text())
    names = CrackSegmenter(strategy='single').manifest_experts
    assert set(report['configurations']) == {f'single:{n}' for n in names} | {
        'hard', 'topk(k=2)', 'soft'}
    assert all(c['frames'] == 2 and c['fps'] > 0 for c in report['configurations'].values())


def test_eval_crack_lodo_mode_matches_the_runtime(tmp_path, samples):
    """--sets/--lodo-run: one row per configuration, fused as CrackSegmenter.segment does."""
    from edge_perception.cli import main

    fold = tmp_path / 'run' / 'samples' / 'onnx'     # a LODO run whose fold 'samples' is the
    fold.mkdir(parents=True)                          # shipped models (linked)
    for path in MODEL_DIR.iterdir():
        (fold / path.name).symlink_to(path)
    out = tmp_path / 'lodo.json'
    assert main(['eval-crack', '--sets', f'samples={SAMPLES}', '--lodo-run',
                 str(tmp_path / 'run'), '--json', str(out), '--threads', '1']) == 0
    report = json.loads(out.read_text())
    spec = yaml.safe_load((MODEL_DIR / 'moe.yaml').read_text())
    names = [e['name'] for e in spec['experts']]
    assert report['mode'] == 'lodo' and report['sets']['samples']['images'] == 5
    assert list(report['results']) == [f'single:{n}' for n in names] + [
        'uniform', 'hard', 'soft', 'topk(k=2)']
    for strategy, key in (('hard', 'hard'), ('topk', 'topk(k=2)')):
        row = report['results'][key]['samples']
        segmenter = CrackSegmenter(strategy=strategy, k=2, intra_op_num_threads=1)
        assert row['threshold'] == segmenter.threshold == spec['thresholds'][key]
        counts = np.zeros(3)
        for _, rgb, gt in samples:
            m = segmentation_metrics(segmenter.segment(rgb).mask, gt)
            counts += (m['tp'], m['fp'], m['fn'])
        assert row['f1'] == pytest.approx(metrics_from_counts(*counts)['f1'], abs=1e-3)
    # A split file keeps only that split's images; a missing fold manifest is an error.
    stems = tmp_path / 'splits.json'
    stems.write_text(json.dumps({'samples': {samples[0][0]: 'test', samples[1][0]: 'train'}}))
    assert main(['eval-crack', '--sets', f'samples={SAMPLES}', '--stems-json', str(stems),
                 '--split', 'test', '--json', str(out), '--threads', '1']) == 0
    assert json.loads(out.read_text())['sets']['samples']['images'] == 1
    assert main(['eval-crack', '--sets', f'other={SAMPLES}', '--lodo-run',
                 str(tmp_path / 'run'), '--json', str(tmp_path / 'x.json')]) == 2
