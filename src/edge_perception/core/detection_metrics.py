"""Matching detections to ground-truth boxes (no rclpy): IoU and greedy one-to-one matching."""


def box_iou(a, b):
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def greedy_match(truth_boxes, predicted_boxes, min_iou=0.5):
    """Match truth boxes to predictions one to one: [(truth index, predicted index)].

    Each truth box, in order, takes its best free prediction with IoU >= min_iou (enough for
    well-separated objects; not an mAP).
    """
    pairs, used = [], set()
    for t, truth in enumerate(truth_boxes):
        best_iou, best = 0.0, None
        for p, predicted in enumerate(predicted_boxes):
            if p not in used:
                value = box_iou(truth, predicted)
                if value > best_iou:
                    best_iou, best = value, p
        if best is not None and best_iou >= min_iou:
            used.add(best)
            pairs.append((t, best))
    return pairs
