"""Cut TrashNet objects out of their plain backgrounds.

TrashNet photos show one object on a white/grey poster board under uneven light. The cut-out:
1. model the background as a smooth colour field: a quadratic surface per Lab channel fitted
   (least squares) to the pixels of a border band (the board fills the border in most photos);
2. pixels far from that field (Lab distance > `fg_threshold`) seed GrabCut as probable
   foreground, the border band as probable background, everything else as probable background;
3. GrabCut (OpenCV) refines the seed; the largest connected component is kept and its holes
   filled (transparent glass lets the board show through).
A cut-out is rejected (returns None) when the mask is implausible: under 4 % or over 80 % of the
photo, or touching more than 35 % of the photo border (the object fills the frame, so the cut
would be a rectangle of frame rather than an object outline).
"""
import cv2
import numpy as np
from scipy import ndimage


def _quadratic_design(ys, xs, h, w):
    y = ys / h - 0.5
    x = xs / w - 0.5
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)


def background_field(lab, band):
    """Fit a quadratic colour field (per Lab channel) to the border band of width `band`."""
    h, w = lab.shape[:2]
    border = np.zeros((h, w), bool)
    border[:band], border[-band:], border[:, :band], border[:, -band:] = True, True, True, True
    ys, xs = np.nonzero(border)
    samples = lab[ys, xs].astype(np.float64)
    design = _quadratic_design(ys.astype(float), xs.astype(float), h, w)
    # Two passes: the second ignores border pixels that the first fit explains badly (object
    # parts touching the border).
    keep = np.ones(len(samples), bool)
    for _ in range(2):
        coef, *_ = np.linalg.lstsq(design[keep], samples[keep], rcond=None)
        resid = np.linalg.norm(design @ coef - samples, axis=1)
        keep = resid < max(np.percentile(resid, 60) * 2.5, 4.0)
    gy, gx = np.mgrid[0:h, 0:w]
    full = _quadratic_design(gy.ravel().astype(float), gx.ravel().astype(float), h, w) @ coef
    return full.reshape(h, w, 3), border


def cut_out(bgr, fg_threshold=18.0, band=4, grabcut_iters=4, work_side=160):
    """Return a bool object mask for a TrashNet photo, or None when the cut-out is implausible.

    The segmentation runs at `work_side` pixels on the short side (GrabCut cost grows with the
    pixel count) and the mask is resized back to the photo with linear interpolation.
    """
    full_h, full_w = bgr.shape[:2]
    scale = work_side / min(full_h, full_w)
    if scale < 1.0:
        bgr = cv2.resize(bgr, (round(full_w * scale), round(full_h * scale)),
                         interpolation=cv2.INTER_AREA)
    h, w = bgr.shape[:2]
    lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB).astype(np.float64)
    field, border = background_field(lab, band)
    dist = np.linalg.norm(lab - field, axis=2)
    seed = np.full((h, w), cv2.GC_PR_BGD, np.uint8)
    seed[dist > fg_threshold] = cv2.GC_PR_FGD
    seed[dist > 2 * fg_threshold] = cv2.GC_FGD
    seed[border & (dist < fg_threshold)] = cv2.GC_BGD
    if (seed == cv2.GC_FGD).sum() < 0.01 * h * w:
        return None
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(bgr, seed, None, bgd_model, fgd_model, grabcut_iters, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        return None
    mask = (seed == cv2.GC_FGD) | (seed == cv2.GC_PR_FGD)
    mask = ndimage.binary_opening(mask, iterations=2)
    labels, n = ndimage.label(mask)
    if n == 0:
        return None
    sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
    mask = labels == (1 + int(np.argmax(sizes)))
    mask = ndimage.binary_fill_holes(mask)
    if mask.shape != (full_h, full_w):
        mask = cv2.resize(mask.astype(np.float32), (full_w, full_h),
                          interpolation=cv2.INTER_LINEAR) > 0.5
    area = mask.mean()
    if not 0.04 <= area <= 0.80:
        return None
    edge = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    if edge.mean() > 0.35:
        return None
    return mask
