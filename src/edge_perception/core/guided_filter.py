"""Fast guided filter: edge-aware smoothing of probability planes, steered by a colour image.

No rclpy. The guided filter (He, Sun and Tang, TPAMI 2013) fits, in every window of the guide
image I (RGB), a linear model q = a . I + b to the input plane p, then averages the models of
the windows covering each pixel. Output edges follow the guide's edges, so probability planes
upsampled from a coarse network output (the waste segmenter's stride-8 logits) snap to the item
outlines in the frame. The fast variant (He and Sun, arXiv:1505.00996, 2015) fits a and b on an
image shrunk `subsample` times and applies them at full size.

The filter is linear in p and maps a constant plane to itself, so C planes that sum to 1 at
every pixel still do afterwards; `fast_guided_filter` uses that to compute the last plane as
1 minus the others.
"""
import cv2
import numpy as np


class GuidedFilterError(ValueError):
    """Planes, guide or settings the filter cannot use."""


def fast_guided_filter(planes, guide_rgb, radius: int, eps: float, subsample: int = 2):
    """Filter C x H x W float planes that sum to 1 per pixel with an H x W x 3 guide in [0, 1].

    Args:
        planes: C x H x W float32 (e.g. softmax probabilities resized to the guide's size).
        guide_rgb: H x W x 3 float32 RGB in [0, 1].
        radius: window radius in guide pixels (the window is 2 * radius + 1 wide).
        eps: regularisation of a; larger smooths across weaker edges (guide in [0, 1] units).
        subsample: the coefficients are fitted on a grid this many times smaller.

    Returns C x H x W float32; the planes still sum to 1 per pixel (to float rounding), and
    values may leave [0, 1] by a little near strong edges.
    """
    planes = np.asarray(planes, np.float32)
    guide = np.asarray(guide_rgb, np.float32)
    if planes.ndim != 3 or planes.shape[0] < 2:
        raise GuidedFilterError(f'planes must be C x H x W with C >= 2, got {planes.shape}')
    if guide.ndim != 3 or guide.shape[2] != 3 or guide.shape[:2] != planes.shape[1:]:
        raise GuidedFilterError(
            f"guide must be H x W x 3 with the planes' H x W {planes.shape[1:]}, got "
            f'{guide.shape}')
    if int(subsample) < 1 or int(radius) < int(subsample):
        raise GuidedFilterError(
            f'need subsample >= 1 and radius >= subsample, got {radius}, {subsample}')
    if not (np.isfinite(eps) and eps > 0):
        raise GuidedFilterError(f'eps must be > 0, got {eps}')
    height, width = guide.shape[:2]
    small = (max(width // subsample, 1), max(height // subsample, 1))
    window = (2 * (int(radius) // int(subsample)) + 1,) * 2

    def mean(x):
        return cv2.boxFilter(x, -1, window, borderType=cv2.BORDER_REFLECT)

    guide_small = [np.ascontiguousarray(c) for c in cv2.split(
        cv2.resize(guide, small, interpolation=cv2.INTER_AREA))]
    guide_mean = [mean(c) for c in guide_small]
    inverse = _inverse_covariance(guide_small, guide_mean, mean, eps)
    guide_full = cv2.split(np.ascontiguousarray(guide))
    out = np.empty(planes.shape, np.float32)
    for n in range(planes.shape[0] - 1):
        p = cv2.resize(planes[n], small, interpolation=cv2.INTER_AREA)
        p_mean = mean(p)
        cov = [mean(guide_small[c] * p) - guide_mean[c] * p_mean for c in range(3)]
        a = [inverse[i][0] * cov[0] + inverse[i][1] * cov[1] + inverse[i][2] * cov[2]
             for i in range(3)]
        b = p_mean - a[0] * guide_mean[0] - a[1] * guide_mean[1] - a[2] * guide_mean[2]
        a0, a1, a2, b = (cv2.resize(mean(x), (width, height), interpolation=cv2.INTER_LINEAR)
                         for x in (*a, b))
        out[n] = a0 * guide_full[0] + a1 * guide_full[1] + a2 * guide_full[2] + b
    out[-1] = 1.0 - out[:-1].sum(axis=0)
    return out


def _inverse_covariance(guide, guide_mean, mean, eps):
    """Per-pixel inverse of the guide's 3 x 3 window covariance + eps I (by cofactors)."""
    s = {}
    for i in range(3):
        for j in range(i, 3):
            s[i, j] = s[j, i] = (mean(guide[i] * guide[j]) - guide_mean[i] * guide_mean[j]
                                 + (eps if i == j else 0.0))
    c00 = s[1, 1] * s[2, 2] - s[1, 2] * s[1, 2]
    c01 = s[0, 2] * s[1, 2] - s[0, 1] * s[2, 2]
    c02 = s[0, 1] * s[1, 2] - s[0, 2] * s[1, 1]
    c11 = s[0, 0] * s[2, 2] - s[0, 2] * s[0, 2]
    c12 = s[0, 2] * s[0, 1] - s[0, 0] * s[1, 2]
    c22 = s[0, 0] * s[1, 1] - s[0, 1] * s[0, 1]
    det = s[0, 0] * c00 + s[0, 1] * c01 + s[0, 2] * c02
    return [[c00 / det, c01 / det, c02 / det],
            [c01 / det, c11 / det, c12 / det],
            [c02 / det, c12 / det, c22 / det]]
