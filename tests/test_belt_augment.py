"""training/material/belt_augment.py: masked belt crops for the segmentation node's region vote.

A synthetic cut-out (a solid green disc with an alpha channel, named like the cache's
`<material>_<stem>.png`) is composited by the detector's compositor. With the same seed the
first composite is the same image in box and masked mode (and the same as the compositor's own
call with that seed, which also gives the item's mask), so the masked crop must be the box crop
with some pixels painted the fill colour, and the item's pixels, bar the rim the mask noise may
erode, never painted.
"""
from pathlib import Path
import sys

import cv2
from edge_perception.core.material import MASK_FILL_RGB, padded_box_bounds
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'training' / 'material'))
import belt_augment  # noqa: E402, I100


@pytest.fixture
def disc_cutout(tmp_path):
    rgba = np.zeros((120, 120, 4), np.uint8)
    cv2.circle(rgba, (60, 60), 55, (0, 255, 0, 255), -1)
    path = tmp_path / 'plastic_disc.png'
    cv2.imwrite(str(path), rgba)
    return path


STYLE = {'min_objects': 1, 'max_objects': 1, 'min_visible': 1.0}


def first_crop(cutout, seed, masked):
    rng = np.random.default_rng(seed)
    return next(belt_augment.belt_crops(rng, [cutout], 1, masked=masked, **STYLE))


def item_mask_in_crop(cutout, seed):
    """Return the item's pixels in its padded box, from the compositor's owner map."""
    _, objects, owner = belt_augment.compose(
        np.random.default_rng(seed), [cutout], belt_augment.FRAME_HEIGHT,
        belt_augment.FRAME_WIDTH, return_owner=True, **STYLE)
    top, bottom, left, right = padded_box_bounds(owner.shape, objects[0][0])
    return owner[top:bottom, left:right] == 0


@pytest.mark.parametrize('seed', range(6))
def test_masked_crop_is_the_box_crop_painted_outside_the_item(disc_cutout, seed):
    box_crop, material, name = first_crop(disc_cutout, seed, masked=False)
    masked_crop, masked_material, _ = first_crop(disc_cutout, seed, masked=True)
    assert material == masked_material == 'plastic' and name == 'plastic_disc'
    assert masked_crop.shape == box_crop.shape
    painted = (masked_crop != box_crop).any(axis=2)
    assert (masked_crop[painted] == MASK_FILL_RGB).all()
    # The disc's box + 10 % pad has corners farther than the largest dilation from the disc.
    assert painted[0, 0] and painted[-1, -1]
    item = item_mask_in_crop(disc_cutout, seed)
    assert item.shape == painted.shape and item.sum() > 1000
    radius = belt_augment.MASK_ERODE_PX[1]
    core = cv2.erode(item.astype(np.uint8),
                     cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 3,) * 2)) > 0
    assert core.sum() > 500 and not painted[core].any()
    # Nothing farther from the item than the largest dilation is kept.
    reach = belt_augment.MASK_DILATE_PX[1]
    near = cv2.dilate(item.astype(np.uint8),
                      cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * reach + 1,) * 2)) > 0
    assert painted[~near].all()


def test_masked_pools_are_cached_under_their_own_key(disc_cutout, tmp_path):
    box = belt_augment.cached_crop_pool(tmp_path / 'cache', [disc_cutout], 3, 0, 32,
                                        min_objects=1, max_objects=1)
    masked = belt_augment.cached_crop_pool(tmp_path / 'cache', [disc_cutout], 3, 0, 32,
                                           masked=True, min_objects=1, max_objects=1)
    assert len(list((tmp_path / 'cache' / 'pools').glob('*.npz'))) == 2
    assert box[0].shape[1:] == masked[0].shape[1:] == (32, 32, 3)
    assert not np.array_equal(box[0][0], masked[0][0])
