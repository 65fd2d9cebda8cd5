"""Material classifier runtime: crop geometry, preprocessing and model/class-list checks.

The classifier tests run the real onnxruntime on a tiny hand-built ONNX graph whose answer is
known in closed form: logits = 10 * (mean R, mean G, mean B) of the [0, 1] input, classes
('red', 'green', 'blue'). A pure red image must therefore come out as 'red' with probability
softmax([10, 0, 0])[0].
"""
import json

from edge_perception.core import material
from edge_perception.core.material import (
    classes_path_for, crop_for_box, MASK_FILL_RGB, masked_crop_for_region, MaterialClassifier,
    MaterialInputError, MaterialModelError,
    preprocess)
import numpy as np
import onnx
from onnx import helper, TensorProto
import pytest

COLOUR_CLASSES = ['red', 'green', 'blue']
GAIN = 10.0


def write_mean_colour_model(path, input_size=8, embed_names=True, dynamic_size=False,
                            num_outputs=3, metadata_input_size=None):
    """Write the closed-form test model described in the module docstring; return its path."""
    size = 'size' if dynamic_size else input_size
    image = helper.make_tensor_value_info('image', TensorProto.FLOAT, ['batch', 3, size, size])
    logits = helper.make_tensor_value_info('logits', TensorProto.FLOAT, ['batch', num_outputs])
    weights = np.zeros((3, num_outputs), dtype=np.float32)
    weights[np.arange(min(3, num_outputs)), np.arange(min(3, num_outputs))] = GAIN
    graph = helper.make_graph(
        [helper.make_node('ReduceMean', ['image'], ['mean'], axes=[2, 3], keepdims=0),
         helper.make_node('MatMul', ['mean', 'weights'], ['logits'])],
        'mean_colour', [image], [logits],
        initializer=[onnx.numpy_helper.from_array(weights, 'weights')])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 13)])
    model.ir_version = 8
    props = {}
    if embed_names:
        props['class_names'] = json.dumps(COLOUR_CLASSES)
    if metadata_input_size is not None:
        props['input_size'] = str(metadata_input_size)
    if props:
        onnx.helper.set_model_props(model, props)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def solid(colour, height=5, width=7):
    """Return an HxWx3 uint8 image of one colour."""
    return np.tile(np.array(colour, dtype=np.uint8), (height, width, 1))


def expected_probabilities(logits):
    exp = np.exp(np.asarray(logits, dtype=np.float64) - max(logits))
    return exp / exp.sum()


@pytest.fixture
def colour_model(tmp_path):
    return write_mean_colour_model(tmp_path / 'colour.onnx')


# --- crop_for_box --------------------------------------------------------------------------

@pytest.fixture
def numbered_image():
    """100 x 200 image whose pixels are all different, so a crop's origin can be read off."""
    return np.arange(100 * 200 * 3, dtype=np.int64).reshape(100, 200, 3)


def test_crop_pads_each_side_by_fraction_of_box(numbered_image):
    # Box 100 wide, 40 high: 10 px more left/right, 4 px more top/bottom.
    crop = crop_for_box(numbered_image, (50, 20, 150, 60), pad_fraction=0.1)
    np.testing.assert_array_equal(crop, numbered_image[16:64, 40:160])


def test_crop_without_padding_covers_fractional_box_with_whole_pixels(numbered_image):
    crop = crop_for_box(numbered_image, (10.5, 20.2, 30.1, 40.9), pad_fraction=0.0)
    np.testing.assert_array_equal(crop, numbered_image[20:41, 10:31])


@pytest.mark.parametrize('box, rows, cols', [
    ((-20, -10, 30, 40), slice(0, 40), slice(0, 30)),        # off the top-left corner
    ((180, 90, 260, 140), slice(90, 100), slice(180, 200)),  # off the bottom-right corner
    ((-5, -5, 500, 500), slice(0, 100), slice(0, 200)),      # larger than the image
])
def test_crop_is_clamped_to_image(numbered_image, box, rows, cols):
    crop = crop_for_box(numbered_image, box, pad_fraction=0.0)
    np.testing.assert_array_equal(crop, numbered_image[rows, cols])


def test_padding_is_clamped_at_image_border(numbered_image):
    # 0.5 padding would reach x = -5 and y = -5; the crop stops at the border instead.
    crop = crop_for_box(numbered_image, (5, 5, 25, 25), pad_fraction=0.5)
    np.testing.assert_array_equal(crop, numbered_image[0:35, 0:35])


def test_crop_is_a_view_and_works_on_grayscale(numbered_image):
    gray = numbered_image[:, :, 0]
    crop = crop_for_box(gray, (0, 0, 10, 10), pad_fraction=0.0)
    assert crop.shape == (10, 10)
    assert np.shares_memory(crop, gray)


@pytest.mark.parametrize('box', [
    (10, 10, 10, 20),                 # zero width
    (10, 20, 30, 20),                 # zero height
    (30, 10, 10, 20),                 # x2 < x1
    (10, float('nan'), 20, 30),       # not finite
    (10, 10, float('inf'), 30),
    (300, 300, 400, 400),             # entirely outside the image
    (-50, -50, -10, -10),
    (1, 2, 3),                        # three numbers
    ('a', 'b', 'c', 'd'),
    None,
])
def test_degenerate_or_invalid_box_raises(numbered_image, box):
    with pytest.raises(MaterialInputError):
        crop_for_box(numbered_image, box)


# --- masked_crop_for_region ----------------------------------------------------------------

def test_masked_crop_keeps_the_region_and_paints_the_rest():
    rgb = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    mask = np.zeros((60, 80), bool)
    mask[20:30, 30:50] = True
    crop = masked_crop_for_region(rgb, (30, 20, 50, 30), mask, dilate_px=0, pad_fraction=0.5)
    # The padded box is rows 15..35, columns 20..60; the region sits at rows 5..15, cols 10..30.
    assert crop.shape == (20, 40, 3)
    np.testing.assert_array_equal(crop[5:15, 10:30], rgb[20:30, 30:50])
    outside = np.ones((20, 40), bool)
    outside[5:15, 10:30] = False
    assert (crop[outside] == MASK_FILL_RGB).all()
    assert not np.shares_memory(crop, rgb)


def test_masked_crop_keeps_a_rim_of_dilate_px_around_the_region():
    rgb = np.full((41, 41, 3), 7, np.uint8)
    mask = np.zeros((41, 41), bool)
    mask[20, 20] = True
    crop = masked_crop_for_region(rgb, (10, 10, 31, 31), mask, dilate_px=3, pad_fraction=0.0)
    kept = (crop == 7).all(axis=2)
    rows, cols = np.nonzero(kept)
    distance = np.hypot(rows - 10, cols - 10)            # the mask pixel is at (10, 10)
    assert distance.max() <= 3 * np.sqrt(2)               # nothing beyond the kernel's corner
    for dr, dc in [(0, 3), (3, 0), (0, -3), (-3, 0), (1, 1), (2, 2)]:
        assert kept[10 + dr, 10 + dc], (dr, dc)           # the disc of radius 3 is kept
    assert not kept[10 + 4, 10] and not kept[10, 10 - 4]


def test_masked_crop_of_a_full_mask_is_the_box_crop():
    rgb = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    box = (5.5, 3, 30, 22)
    np.testing.assert_array_equal(
        masked_crop_for_region(rgb, box, np.ones((30, 40), bool), dilate_px=7),
        crop_for_box(rgb, box))


def test_masked_crop_works_on_grayscale():
    gray = np.full((20, 20), 9, np.uint8)
    mask = np.zeros((20, 20), bool)
    mask[5:10, 5:10] = True
    crop = masked_crop_for_region(gray, (5, 5, 10, 10), mask, dilate_px=0, pad_fraction=0.4)
    assert crop.shape == (9, 9) and (crop[2:7, 2:7] == 9).all()
    assert crop[0, 0] == MASK_FILL_RGB[0]


def test_masked_crop_refuses_a_mask_of_another_size_or_a_negative_dilation():
    rgb = np.zeros((20, 30, 3), np.uint8)
    with pytest.raises(MaterialInputError, match='differ in size'):
        masked_crop_for_region(rgb, (1, 1, 5, 5), np.ones((30, 20), bool), dilate_px=7)
    with pytest.raises(MaterialInputError, match='dilate_px'):
        masked_crop_for_region(rgb, (1, 1, 5, 5), np.ones((20, 30), bool), dilate_px=-1)


def test_negative_padding_raises(numbered_image):
    with pytest.raises(MaterialInputError, match='pad_fraction'):
        crop_for_box(numbered_image, (0, 0, 10, 10), pad_fraction=-0.1)


# --- preprocess ----------------------------------------------------------------------------

def test_preprocess_scales_to_unit_range_in_chw_order():
    out = preprocess(solid((255, 0, 51), height=9, width=13), input_size=4)
    assert out.shape == (3, 4, 4) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], [1.0, 0.0, 0.2], atol=1e-6)


@pytest.mark.parametrize('shape', [(1, 1, 3), (3, 517, 3), (517, 2, 3)])
def test_preprocess_accepts_any_crop_size(shape):
    image = np.full(shape, 128, dtype=np.uint8)
    out = preprocess(image, input_size=16)
    assert out.shape == (3, 16, 16)
    np.testing.assert_allclose(out, 128 / 255, atol=1e-6)


def test_preprocess_repeats_grayscale_and_drops_alpha():
    gray = np.full((6, 6), 200, dtype=np.uint8)
    for image in (gray, gray[:, :, None]):
        np.testing.assert_allclose(preprocess(image, 4), 200 / 255, atol=1e-6)
    rgba = np.dstack([solid((10, 20, 30), 6, 6), np.zeros((6, 6), np.uint8)])
    np.testing.assert_allclose(preprocess(rgba, 4)[:, 0, 0], np.array([10, 20, 30]) / 255,
                               atol=1e-6)


@pytest.mark.parametrize('image', [
    np.zeros((4, 4, 3), dtype=np.float32),
    np.zeros((4, 4, 3), dtype=np.uint16),
    np.zeros((0, 4, 3), dtype=np.uint8),
    np.zeros((4, 4, 2), dtype=np.uint8),
    np.zeros((2, 4, 4, 3), dtype=np.uint8),
    [[1, 2], [3, 4]],
])
def test_preprocess_rejects_unusable_images(image):
    with pytest.raises(MaterialInputError):
        preprocess(image, 8)


# --- MaterialClassifier with the closed-form model -----------------------------------------

def test_classifies_pure_colours_with_known_probabilities(colour_model):
    classifier = MaterialClassifier(colour_model)
    assert classifier.class_names == COLOUR_CLASSES
    assert classifier.input_size == 8
    results = classifier.classify([solid((255, 0, 0)), solid((0, 255, 0)), solid((0, 0, 255))])
    assert [r.material for r in results] == COLOUR_CLASSES
    top = expected_probabilities([GAIN, 0, 0])
    for index, result in enumerate(results):
        assert result.confidence == pytest.approx(top[0], abs=1e-6)
        expected = np.roll(top, index)
        np.testing.assert_allclose([result.probabilities[n] for n in COLOUR_CLASSES], expected,
                                   atol=1e-6)


def test_mixed_colour_gives_softmax_of_mean_colour(colour_model):
    # Left half red, right half blue: mean colour (0.5, 0, 0.5) -> logits (5, 0, 5).
    image = np.concatenate([solid((255, 0, 0), 8, 4), solid((0, 0, 255), 8, 4)], axis=1)
    result = MaterialClassifier(colour_model).classify([image])[0]
    np.testing.assert_allclose([result.probabilities[n] for n in COLOUR_CLASSES],
                               expected_probabilities([5, 0, 5]), atol=1e-5)


def test_batch_gives_same_results_as_single_images(colour_model):
    classifier = MaterialClassifier(colour_model)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
              for h, w in ((5, 9), (31, 3), (8, 8), (1, 1))]
    batched = classifier.classify(images)
    for image, in_batch in zip(images, batched):
        alone = classifier.classify([image])[0]
        assert alone.material == in_batch.material
        for name in COLOUR_CLASSES:
            assert alone.probabilities[name] == pytest.approx(in_batch.probabilities[name],
                                                              abs=1e-6)


def test_grayscale_crop_has_no_colour_preference(colour_model):
    result = MaterialClassifier(colour_model).classify([np.full((3, 5), 90, np.uint8)])[0]
    np.testing.assert_allclose(list(result.probabilities.values()), [1 / 3] * 3, atol=1e-6)


def test_empty_list_gives_empty_result_and_bare_array_is_refused(colour_model):
    classifier = MaterialClassifier(colour_model)
    assert classifier.classify([]) == []
    with pytest.raises(MaterialInputError, match='list'):
        classifier.classify(solid((255, 0, 0)))
    with pytest.raises(MaterialInputError, match='uint8'):
        classifier.classify([solid((255, 0, 0)).astype(np.float32)])


def test_missing_model_file_names_the_path(tmp_path):
    path = tmp_path / 'nowhere' / 'material.onnx'
    with pytest.raises(MaterialModelError, match='not found') as error:
        MaterialClassifier(path)
    assert str(path) in str(error.value)


def test_corrupt_model_file_names_the_path(tmp_path):
    path = tmp_path / 'corrupt.onnx'
    path.write_bytes(b'this is not an ONNX protobuf \x00\x01\x02' * 10)
    with pytest.raises(MaterialModelError, match='cannot load') as error:
        MaterialClassifier(path)
    assert str(path) in str(error.value)


def test_truncated_model_file_is_refused(tmp_path, colour_model):
    truncated = tmp_path / 'truncated.onnx'
    truncated.write_bytes(colour_model.read_bytes()[:60])
    with pytest.raises(MaterialModelError, match=str(truncated)):
        MaterialClassifier(truncated)


def test_sidecar_class_list_used_when_nothing_is_embedded(tmp_path):
    path = write_mean_colour_model(tmp_path / 'plain.onnx', embed_names=False)
    classes_path_for(path).write_text('# output order\nred\n\ngreen\nblue\n')
    classifier = MaterialClassifier(path)
    assert classifier.class_names == COLOUR_CLASSES
    assert classifier.classify([solid((0, 0, 255))])[0].material == 'blue'


def test_sidecar_disagreeing_with_embedded_names_raises(colour_model):
    classes_path_for(colour_model).write_text('green\nred\nblue\n')
    with pytest.raises(MaterialModelError, match='disagrees'):
        MaterialClassifier(colour_model)


def test_configured_class_names_must_match_the_model(colour_model):
    assert MaterialClassifier(colour_model, class_names=COLOUR_CLASSES).class_names == \
        COLOUR_CLASSES
    with pytest.raises(MaterialModelError, match='do not match'):
        MaterialClassifier(colour_model, class_names=['blue', 'green', 'red'])


def test_class_count_must_match_model_outputs(tmp_path):
    path = write_mean_colour_model(tmp_path / 'four.onnx', embed_names=False, num_outputs=4)
    classes_path_for(path).write_text('red\ngreen\nblue\n')
    with pytest.raises(MaterialModelError, match='outputs 4 classes'):
        MaterialClassifier(path)


def test_model_without_any_class_list_raises(tmp_path):
    path = write_mean_colour_model(tmp_path / 'anonymous.onnx', embed_names=False)
    with pytest.raises(MaterialModelError, match='no class names'):
        MaterialClassifier(path)
    # Names passed by the caller are enough when the model carries none.
    assert MaterialClassifier(path, class_names=COLOUR_CLASSES).class_names == COLOUR_CLASSES


def test_input_size_must_match_a_fixed_size_model(colour_model):
    assert MaterialClassifier(colour_model, input_size=8).input_size == 8
    with pytest.raises(MaterialModelError, match='input_size 16'):
        MaterialClassifier(colour_model, input_size=16)


def test_dynamic_size_model_needs_an_input_size(tmp_path):
    path = write_mean_colour_model(tmp_path / 'dynamic.onnx', dynamic_size=True)
    with pytest.raises(MaterialModelError, match='dynamic input size'):
        MaterialClassifier(path)
    classifier = MaterialClassifier(path, input_size=24)
    assert classifier.input_size == 24
    assert classifier.classify([solid((0, 255, 0))])[0].material == 'green'


def test_dynamic_size_model_takes_its_input_size_from_metadata(tmp_path):
    path = write_mean_colour_model(tmp_path / 'declared.onnx', dynamic_size=True,
                                   metadata_input_size=16)
    classifier = MaterialClassifier(path)
    assert classifier.input_size == 16
    assert classifier.classify([solid((0, 0, 255))])[0].material == 'blue'
    with pytest.raises(MaterialModelError, match='input_size 12'):
        MaterialClassifier(path, input_size=12)


def test_metadata_input_size_must_agree_with_a_fixed_graph_input(tmp_path):
    agreeing = write_mean_colour_model(tmp_path / 'same.onnx', metadata_input_size=8)
    assert MaterialClassifier(agreeing).input_size == 8
    path = write_mean_colour_model(tmp_path / 'differs.onnx', metadata_input_size=16)
    with pytest.raises(MaterialModelError, match='disagrees with the graph input 8x8'):
        MaterialClassifier(path)


def test_metadata_input_size_that_is_not_a_number_is_refused(tmp_path):
    path = write_mean_colour_model(tmp_path / 'words.onnx', dynamic_size=True,
                                   metadata_input_size='large')
    with pytest.raises(MaterialModelError, match='not an integer'):
        MaterialClassifier(path)


def test_thread_count_must_be_positive(colour_model):
    with pytest.raises(MaterialModelError, match='intra_op_num_threads'):
        MaterialClassifier(colour_model, intra_op_num_threads=0)


def test_errors_are_value_errors():
    assert issubclass(MaterialModelError, ValueError)
    assert issubclass(MaterialInputError, ValueError)
    assert material.DEFAULT_MODEL_PATH.name.endswith('.onnx')
