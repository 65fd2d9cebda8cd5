"""Adaptive Top-K mixture of crack-segmentation experts (Okran et al., Electronics 2026), no rclpy.

A gate scores each image; g = softmax(gate(x)). Strategies (the paper's equations 5-7):

- hard: y = f_{argmax g}(x)                                   (one expert runs)
- soft: y = sum_i g_i f_i(x)                                  (all experts run)
- topk: y = sum_{i in TopK(g)} g_i / sum_{j in TopK(g)} g_j f_i(x)   (K experts run, default 2)
- single: one named expert, no gate.

Experts output per-pixel crack probabilities; the fused probability is thresholded. The threshold
is, in order: the constructor's `threshold`; the manifest's `thresholds` entry for the
configuration (keys as `config_key` writes them: `single:NAME`, `hard`, `soft`, `topk(k=K)`;
calibrated by the training scripts on out-of-fold predictions, i.e. on surfaces the models were
not trained on); the manifest's `threshold`; 0.5.

Models are ONNX files run with onnxruntime, listed in a YAML manifest (default: the shipped
`models/crack/moe.yaml`; see that file for the format) so that users can swap in their own.
Input sizes: an expert with `input: {pad_to_multiple: m}` runs at the image's own resolution,
padded bottom/right by reflection to a multiple of m (the padding is cropped off the output);
one with `input: {size: [H, W]}` gets the image resized to H x W and its output resized back
(bilinear). `max_side` optionally downscales large images first (output is resized back). The gate
sees the whole image resized (area interpolation) to its fixed input size.
"""
from dataclasses import dataclass, field
import os
import time
from typing import List, Optional

from edge_perception.core.onnx_session import cpu_session
import numpy as np

STRATEGIES = ('single', 'hard', 'soft', 'topk')
GATED_STRATEGIES = ('hard', 'soft', 'topk')


class MoEInputError(ValueError):
    """Invalid argument to a fusion function or to the segmenter."""


class CrackModelError(ValueError):
    """A model file or manifest that is missing, corrupt or inconsistent (the message names it)."""


def config_key(strategy, k=2, expert=None):
    """Name of a configuration, as in the manifest's `thresholds` and eval-crack's tables."""
    if strategy == 'single':
        return f'single:{expert}'
    if strategy == 'topk':
        return f'topk(k={int(k)})'
    return strategy


def manifest_threshold(spec, key):
    """Threshold of configuration `key` in a parsed manifest (see the module docstring)."""
    per_config = spec.get('thresholds') or {}
    if not isinstance(per_config, dict):
        raise CrackModelError(f'manifest thresholds must be a mapping, got {per_config!r}')
    return float(per_config.get(key, spec.get('threshold', 0.5)))


def default_manifest_path():
    """Path of the shipped manifest, edge_perception/models/crack/moe.yaml."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        'models', 'crack', 'moe.yaml')


# --- Pure fusion functions ------------------------------------------------------------------

def gate_weights(logits):
    """Softmax over the last axis of the gate's logits (numerically stable)."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 0 or z.shape[-1] == 0:
        raise MoEInputError(f'gate logits must have at least one expert, got shape {z.shape}')
    if not np.all(np.isfinite(z)):
        raise MoEInputError('gate logits contain NaN or inf')
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def select_experts(weights, strategy='topk', k=2):
    """Experts to run and their renormalised fusion weights for one image.

    weights: gate weights (n,), non-negative, summing to 1. Returns (indices, fusion_weights)
    with indices ordered by decreasing weight (ties: lower index first) and fusion weights summing
    to 1: hard -> the argmax with weight 1; soft -> all experts with their gate weights;
    topk -> the K largest, renormalised over the K.
    """
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0:
        raise MoEInputError(f'weights must be a non-empty 1-D array, got shape {w.shape}')
    if not np.all(np.isfinite(w)) or np.any(w < 0) or abs(w.sum() - 1.0) > 1e-6:
        raise MoEInputError(f'weights must be finite, >= 0 and sum to 1, got {w.tolist()}')
    order = np.argsort(-w, kind='stable')
    if strategy == 'hard':
        chosen = order[:1]
    elif strategy == 'soft':
        chosen = order
    elif strategy == 'topk':
        if isinstance(k, bool) or int(k) != k or not 1 <= k <= w.size:
            raise MoEInputError(f'k must be an integer in [1, {w.size}], got {k}')
        chosen = order[:int(k)]
    else:
        raise MoEInputError(f'strategy must be one of {GATED_STRATEGIES}, got {strategy!r}')
    total = w[chosen].sum()
    if total <= 0:  # all chosen weights underflowed to 0: share equally
        return chosen, np.full(chosen.size, 1.0 / chosen.size)
    return chosen, w[chosen] / total


def fuse(prob_maps, weights):
    """Weighted sum of probability maps: sum_i weights[i] * prob_maps[i] (float32)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 1 or w.size == 0 or len(prob_maps) != w.size:
        raise MoEInputError(
            f'need one weight per probability map, got {w.size} weights for {len(prob_maps)} maps')
    if not np.all(np.isfinite(w)) or np.any(w < 0) or abs(w.sum() - 1.0) > 1e-6:
        raise MoEInputError(f'weights must be finite, >= 0 and sum to 1, got {w.tolist()}')
    shape = np.shape(prob_maps[0])
    fused = np.zeros(shape, dtype=np.float32)
    for p, wi in zip(prob_maps, w):
        p = np.asarray(p, dtype=np.float32)
        if p.shape != shape:
            raise MoEInputError(f'probability maps differ in shape: {p.shape} vs {shape}')
        fused += np.float32(wi) * p
    return fused


# --- Runtime --------------------------------------------------------------------------------

@dataclass
class SegmentationResult:
    """One segmented image."""

    prob: np.ndarray                 # (H, W) float32 crack probability, input size
    mask: np.ndarray                 # (H, W) bool, prob >= threshold
    experts_used: List[str]          # experts that ran, by decreasing fusion weight
    expert_weights: List[float]      # their fusion weights (sum 1)
    inference_ms: float              # gate + experts incl. pre/post-processing
    gate_weights: Optional[dict] = field(default=None)  # softmax over all experts (gated only)


@dataclass
class _Model:
    name: str
    path: str
    session: object
    input_name: str
    mode: str                        # 'pad' or 'size'
    value: tuple                     # (multiple,) or (H, W)
    mean: np.ndarray
    std: np.ndarray
    output: str                      # 'probability' or 'logits'


def _require(entry, key, where):
    if not isinstance(entry, dict) or key not in entry:
        raise CrackModelError(f'{where}: missing key {key!r}')
    return entry[key]


def _load_session(path, threads):
    # Each session has its own thread pool; spinning idle threads of the gate and of the other
    # experts would steal the cores from the one running (measured: top-2 1.5x slower).
    return cpu_session(path, CrackModelError, 'ONNX model', threads, allow_spinning=False)


def _parse_model(entry, name, base_dir, threads, where):
    path = os.path.join(base_dir, str(_require(entry, 'file', where)))
    spec = _require(entry, 'input', where)
    if isinstance(spec, dict) and 'pad_to_multiple' in spec:
        mode, value = 'pad', (int(spec['pad_to_multiple']),)
        if value[0] < 1:
            raise CrackModelError(f'{where}: pad_to_multiple must be >= 1')
    elif isinstance(spec, dict) and 'size' in spec:
        size = spec['size']
        if len(size) != 2 or int(size[0]) < 1 or int(size[1]) < 1:
            raise CrackModelError(f'{where}: input size must be [H, W], got {size}')
        mode, value = 'size', (int(size[0]), int(size[1]))
    else:
        raise CrackModelError(f'{where}: input needs pad_to_multiple or size, got {spec}')
    norm = entry.get('normalisation', {'mean': [0.0] * 3, 'std': [1.0] * 3})
    mean = np.asarray(_require(norm, 'mean', where), np.float32).reshape(3)
    std = np.asarray(_require(norm, 'std', where), np.float32).reshape(3)
    if np.any(std <= 0):
        raise CrackModelError(f'{where}: std must be > 0')
    output = entry.get('output', 'probability')
    if output not in ('probability', 'logits'):
        raise CrackModelError(f'{where}: output must be probability or logits, got {output!r}')
    session = _load_session(path, threads)
    return _Model(name, path, session, session.get_inputs()[0].name, mode, value, mean, std,
                  output)


def _resize(image, height, width, interpolation):
    import cv2

    return cv2.resize(image, (width, height), interpolation=interpolation)


class CrackSegmenter:
    """Crack segmentation with ONNX experts and a gate (see the module docstring)."""

    def __init__(self, manifest=None, strategy='topk', k=2, experts=None, expert=None,
                 threshold=None, intra_op_num_threads=2, max_side=None):
        """Load the manifest's models.

        manifest: path of the YAML manifest (default: the shipped one). strategy: single, hard,
        soft or topk. k: experts fused by topk. experts: names to consider (default all; the gate's
        weights are renormalised over them). expert: the expert for 'single' (default the
        manifest's default_expert). threshold: on the fused probability (default the manifest's,
        else 0.5). intra_op_num_threads: onnxruntime threads per session. max_side: downscale
        images whose longer side exceeds this before inference (None: native resolution).
        """
        import yaml

        if strategy not in STRATEGIES:
            raise MoEInputError(f'strategy must be one of {STRATEGIES}, got {strategy!r}')
        if isinstance(intra_op_num_threads, bool) or int(intra_op_num_threads) < 0:
            raise MoEInputError(f'intra_op_num_threads must be >= 0 (0: onnxruntime default), '
                                f'got {intra_op_num_threads}')
        if max_side is not None and int(max_side) < 16:
            raise MoEInputError(f'max_side must be >= 16 or None, got {max_side}')
        manifest = manifest or default_manifest_path()
        if not os.path.isfile(manifest):
            raise CrackModelError(f'manifest not found: {manifest}')
        try:
            with open(manifest) as f:
                spec = yaml.safe_load(f)
        except yaml.YAMLError as exc:
            raise CrackModelError(f'manifest {manifest} is not valid YAML: {exc}') from exc
        base = os.path.dirname(os.path.abspath(manifest))
        entries = _require(spec, 'experts', manifest)
        if not isinstance(entries, list) or not entries:
            raise CrackModelError(f'{manifest}: experts must be a non-empty list')
        names = [str(_require(e, 'name', manifest)) for e in entries]
        if len(set(names)) != len(names):
            raise CrackModelError(f'{manifest}: duplicate expert names {names}')
        wanted = names if experts is None else list(experts)
        unknown = [n for n in wanted if n not in names]
        if unknown or not wanted:
            raise MoEInputError(f'unknown or no experts {unknown or wanted}; manifest has {names}')
        self.strategy = strategy
        self.max_side = None if max_side is None else int(max_side)
        self.manifest = manifest
        self.expert = None
        if strategy == 'single':
            self.expert = expert or spec.get('default_expert', wanted[0])
            if self.expert not in names:
                raise MoEInputError(f'expert {self.expert!r} not in manifest experts {names}')
            wanted = [self.expert]
        elif strategy == 'topk' and (isinstance(k, bool) or int(k) != k or
                                     not 1 <= k <= len(wanted)):
            raise MoEInputError(f'k must be an integer in [1, {len(wanted)}], got {k}')
        self.k = int(k)
        self.thresholds = {}
        if isinstance(spec.get('thresholds'), dict):
            self.thresholds = {str(key): float(v) for key, v in spec['thresholds'].items()}
        self.threshold = float(manifest_threshold(spec, config_key(strategy, k, self.expert))
                               if threshold is None else threshold)
        if not 0.0 < self.threshold < 1.0:
            raise MoEInputError(f'threshold must be in (0, 1), got {self.threshold}')
        self.manifest_experts = names
        self.expert_names = wanted
        by_name = dict(zip(names, entries))
        self._experts = [_parse_model(by_name[n], n, base, intra_op_num_threads,
                                      f'{manifest} expert {n}') for n in wanted]
        self._gate = None
        if strategy in GATED_STRATEGIES:
            gate = _require(spec, 'gate', manifest)
            gate_order = [str(n) for n in _require(gate, 'experts', f'{manifest} gate')]
            if sorted(gate_order) != sorted(names):
                raise CrackModelError(f'{manifest}: gate experts {gate_order} do not match '
                                      f'experts {names}')
            self._gate = _parse_model(gate, 'gate', base, intra_op_num_threads,
                                      f'{manifest} gate')
            if self._gate.mode != 'size':
                raise CrackModelError(f'{manifest}: the gate needs a fixed input size')
            self._gate_columns = [gate_order.index(n) for n in wanted]

    @staticmethod
    def check_image(rgb):
        """Raise MoEInputError unless rgb is an (H, W, 3) uint8 array with H, W >= 1."""
        arr = np.asarray(rgb)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise MoEInputError(f'expected an RGB image (H, W, 3), got shape {arr.shape}')
        if arr.dtype != np.uint8:
            raise MoEInputError(f'expected uint8 RGB, got dtype {arr.dtype}')
        if arr.shape[0] < 1 or arr.shape[1] < 1:
            raise MoEInputError(f'image has no pixels: shape {arr.shape}')
        return arr

    def _normalised(self, rgb, model):
        x = (rgb.astype(np.float32) * np.float32(1.0 / 255.0) - model.mean) / model.std
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    def _run_expert(self, model, rgb):
        import cv2

        h, w = rgb.shape[:2]
        if model.mode == 'size':
            x = _resize(rgb, model.value[0], model.value[1], cv2.INTER_AREA)
        else:
            m = model.value[0]
            ph, pw = (-h) % m, (-w) % m
            x = rgb
            if ph or pw:
                pad_mode = 'reflect' if h > 1 and w > 1 else 'edge'
                x = np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode=pad_mode)
        out = model.session.run(None, {model.input_name: self._normalised(x, model)})[0]
        out = np.asarray(out, np.float32).reshape(out.shape[-2:])
        if model.output == 'logits':
            out = 1.0 / (1.0 + np.exp(-out))
        if model.mode == 'size':
            return _resize(out, h, w, cv2.INTER_LINEAR)
        return out[:h, :w]

    def gate_logits(self, rgb):
        """Gate logits (one per considered expert, in self.expert_names order) for an image."""
        import cv2

        if self._gate is None:
            raise MoEInputError(f'strategy {self.strategy!r} has no gate')
        rgb = self.check_image(rgb)
        x = _resize(rgb, self._gate.value[0], self._gate.value[1], cv2.INTER_AREA)
        out = self._gate.session.run(None, {self._gate.input_name: self._normalised(
            x, self._gate)})[0]
        return np.asarray(out, np.float64).reshape(-1)[self._gate_columns]

    def warm_up(self, side=64):
        """Run the gate and every expert once on a blank side x side image.

        ONNX Runtime builds its kernels on a session's first run: measured on this CPU, the
        first segment() took 0.9 s against 0.09 s after. A node calls this at load so that its
        first frame is not the slow one (with keep-last-1 input, later frames would be lost).
        """
        blank = np.zeros((side, side, 3), np.uint8)
        if self._gate is not None:
            self.gate_logits(blank)
        for model in self._experts:
            self._run_expert(model, blank)

    def expert_probabilities(self, rgb):
        """Every considered expert's probability map at input size (dict name -> (H, W)).

        For evaluation: all experts run, whatever the strategy (as `segment` with `soft` would
        run them, same pre-processing and max_side handling).
        """
        import cv2

        rgb = self.check_image(rgb)
        h, w = rgb.shape[:2]
        work = self._work_image(rgb)
        out = {}
        for model in self._experts:
            prob = self._run_expert(model, work)
            if prob.shape != (h, w):
                prob = _resize(prob, h, w, cv2.INTER_LINEAR)
            out[model.name] = np.clip(prob, 0.0, 1.0)
        return out

    def _work_image(self, rgb):
        import cv2

        h, w = rgb.shape[:2]
        if self.max_side is not None and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            return _resize(rgb, max(1, round(h * scale)), max(1, round(w * scale)),
                           cv2.INTER_AREA)
        return rgb

    def segment(self, rgb):
        """Segment an (H, W, 3) uint8 RGB image; returns a SegmentationResult at input size."""
        import cv2

        rgb = self.check_image(rgb)
        t0 = time.perf_counter()
        h, w = rgb.shape[:2]
        work = self._work_image(rgb)
        gate = None
        if self._gate is None:
            chosen, fusion = np.array([0]), np.array([1.0])
        else:
            g = gate_weights(self.gate_logits(work))
            gate = {n: float(v) for n, v in zip(self.expert_names, g)}
            chosen, fusion = select_experts(g, self.strategy, self.k)
        probs = [self._run_expert(self._experts[i], work) for i in chosen]
        prob = fuse(probs, fusion)
        if prob.shape != (h, w):
            prob = _resize(prob, h, w, cv2.INTER_LINEAR)
        prob = np.clip(prob, 0.0, 1.0)
        elapsed_ms = (time.perf_counter() - t0) * 1000.0
        return SegmentationResult(
            prob=prob, mask=prob >= self.threshold,
            experts_used=[self.expert_names[i] for i in chosen],
            expert_weights=[float(v) for v in fusion], inference_ms=elapsed_ms,
            gate_weights=gate)
