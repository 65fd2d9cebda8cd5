"""Per-pixel material labels -> one detection per connected region of one material.

No rclpy. A semantic segmentation model labels every pixel (0 = background, 1.. = a material);
a sorting arm and the tracker want objects. `label_regions` cuts the label image into
8-connected regions of one label (OpenCV's connected components, one pass per label present),
drops specks under `min_area_px`, and returns `Detection2D`s (core.detector's type, so the
detector node's depth fusion, messages and tracker take them unchanged): class = the label,
score = mean per-pixel confidence over the region, box = the region's extent, mask = the
region. Items of the same material that touch merge into one region: semantic labels carry no
instance boundary (a limitation of the approach, not of this function).
"""
from typing import List, Sequence

import cv2
from edge_perception.core.detector import Detection2D
import numpy as np

# The segmentation node's default `min_region_area_px` (also eval-waste-seg's): on a 640 x 480
# belt frame, smaller regions of one label are argmax speckle on item edges, not items.
MIN_REGION_AREA_PX = 400


class RegionInputError(ValueError):
    """Label or confidence image of the wrong shape or type."""


def label_regions(labels: np.ndarray, confidence: np.ndarray, class_names: Sequence[str],
                  min_area_px: int = 200, max_regions: int = 100,
                  background_label: int = 0) -> List[Detection2D]:
    """Return one Detection2D per connected region of one non-background label.

    Args:
        labels: HxW uint8 label image (label i names class_names[i]).
        confidence: HxW float confidence of each pixel's label, in [0, 1].
        class_names: name of every label, background included.
        min_area_px: regions with fewer pixels are dropped (speckle of the argmax).
        max_regions: at most this many regions, the largest first.
        background_label: the label that is not an object.
    Regions are ordered largest first; class_id is the label value.
    """
    labels = np.asarray(labels)
    confidence = np.asarray(confidence)
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise RegionInputError(f'labels must be a 2-D uint8 image, got {labels.dtype} '
                               f'{labels.shape}')
    if confidence.shape != labels.shape:
        raise RegionInputError(f'confidence {confidence.shape} and labels {labels.shape} '
                               'differ in shape')
    # Labels present (a histogram: OpenCV's is ten times numpy's bincount on a 640x480 frame).
    present = np.flatnonzero(cv2.calcHist([labels], [0], None, [256], [0, 256]).ravel())
    if present.size and present.max() >= len(class_names):
        raise RegionInputError(f'label {int(present.max())} has no name ({len(class_names)} '
                               'class names)')
    found = []
    for label in present:
        if label == background_label:
            continue
        # Components, stats and masks on the label's extent only, scores on each region's box:
        # 15 -> 4 ms for 9 regions of a 640x480 belt frame (measured).
        of_label = labels == label
        rows = np.flatnonzero(of_label.any(axis=1))
        cols = np.flatnonzero(of_label[rows[0]:rows[-1] + 1].any(axis=0))
        r0, c0 = int(rows[0]), int(cols[0])
        r1, c1 = int(rows[-1]) + 1, int(cols[-1]) + 1
        _, components, stats, _ = cv2.connectedComponentsWithStats(
            of_label[r0:r1, c0:c1].view(np.uint8), connectivity=8)
        areas = stats[1:, cv2.CC_STAT_AREA]
        for k in np.flatnonzero(areas >= max(1, min_area_px)) + 1:
            x, y, w, h, area = stats[k]
            region = components[y:y + h, x:x + w] == k
            mask = np.zeros(labels.shape, bool)
            mask[r0 + y:r0 + y + h, c0 + x:c0 + x + w] = region
            score = confidence[r0 + y:r0 + y + h, c0 + x:c0 + x + w][region].mean()
            found.append((int(area), Detection2D(
                class_id=int(label), class_name=str(class_names[label]),
                score=float(score),
                box_xyxy=(float(c0 + x), float(r0 + y), float(c0 + x + w), float(r0 + y + h)),
                mask=mask)))
    found.sort(key=lambda item: -item[0])
    return [det for _, det in found[:max_regions]]
