"""One way to open an ONNX Runtime CPU session for the package's model runtimes (no rclpy).

The material classifier, the waste segmenter and the crack experts and gate load their ONNX
files through `cpu_session`, so a missing file, a bad thread count and a corrupt graph are
reported the same way, each as the caller's own error class.
"""
from pathlib import Path
from typing import Optional, Type


def cpu_session(model_path, error: Type[Exception], what: str,
                intra_op_num_threads: Optional[int] = None, allow_spinning: bool = True):
    """Return an onnxruntime.InferenceSession of model_path on the CPU.

    Args:
        model_path: the .onnx file.
        error: exception class raised (with the path and the reason) when the file is missing,
            the thread count is below 1, or onnxruntime cannot load the graph.
        what: what the model is, for the messages ('material model', ...).
        intra_op_num_threads: threads of this session (None: onnxruntime's default).
        allow_spinning: False stops idle threads from spinning, for sessions that take turns
            on the same cores (the crack experts and gate: measured top-2 1.5x slower with it).
    """
    import onnxruntime as ort  # deferred: importing the runtimes stays cheap

    path = Path(model_path)
    if not path.is_file():
        raise error(f'{what} not found: {path}')
    options = ort.SessionOptions()
    if intra_op_num_threads is not None:
        if int(intra_op_num_threads) < 1:
            raise error(f'intra_op_num_threads must be >= 1, got {intra_op_num_threads}')
        options.intra_op_num_threads = int(intra_op_num_threads)
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not allow_spinning:
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
    try:
        return ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])
    except Exception as exc:  # onnxruntime raises its own classes for corrupt/invalid graphs
        raise error(f'cannot load {what} {path}: {exc}') from exc
