"""The shipped material model, run with the real onnxruntime on the bundled TrashNet samples.

The samples (2 per class, see data/samples/trashnet/LICENSE.md) come from the validation split,
which the shipped model was never trained on (and no epoch or variant was picked on it). On the
whole split the model scores the val top-1 given in models/material/MODEL_CARD.md; the floor
below sits under that, so it catches a broken model or preprocessing (chance is 1/6) without
being tuned to these 12 images.
"""
import json
from pathlib import Path

from edge_perception import cli
from edge_perception.core.material import (
    classes_path_for, crop_for_box, DEFAULT_MODEL_PATH, MaterialClassifier, read_class_names)
import numpy as np
import onnx
from PIL import Image
import pytest

SAMPLES = Path(__file__).resolve().parent.parent / 'src' / 'edge_perception' / 'data' / \
    'samples' / 'trashnet'
CLASSES = ['cardboard', 'glass', 'metal', 'paper', 'plastic', 'trash']
SAMPLE_ACCURACY_FLOOR = 10 / 12  # the model card's val top-1 is 0.94: about 1 in 16 wrong


def load_samples():
    """Return ([RGB uint8 image], [true class name]) for every bundled sample."""
    images, labels = [], []
    for path in sorted(SAMPLES.glob('*/*.jpg')):
        with Image.open(path) as image:
            images.append(np.asarray(image.convert('RGB')))
        labels.append(path.parent.name)
    return images, labels


@pytest.fixture(scope='module')
def classifier():
    return MaterialClassifier()


@pytest.fixture(scope='module')
def samples():
    return load_samples()


def test_shipped_model_files_are_consistent(classifier):
    assert DEFAULT_MODEL_PATH.is_file()
    assert DEFAULT_MODEL_PATH.stat().st_size < 10 * 1024 * 1024  # the seed's edge budget
    assert read_class_names(classes_path_for(DEFAULT_MODEL_PATH)) == CLASSES
    assert classifier.class_names == CLASSES
    assert classifier.input_size == 192
    assert DEFAULT_MODEL_PATH.name == 'material_effnet_lite0.onnx'


def test_shipped_model_metadata_is_the_runtime_contract():
    proto = onnx.load(str(DEFAULT_MODEL_PATH))
    metadata = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(metadata['class_names']) == CLASSES
    assert int(metadata['input_size']) == 192
    assert 'EfficientNet-Lite0' in metadata['architecture']
    (image,) = proto.graph.input
    assert image.type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # float32 in, any variant
    dims = image.type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, 192, 192]


def test_bundled_samples_are_two_per_class(samples):
    _, labels = samples
    assert sorted(labels) == sorted(CLASSES * 2)


def test_classifies_bundled_samples_above_floor(classifier, samples):
    images, labels = samples
    results = classifier.classify(images)
    correct = sum(r.material == truth for r, truth in zip(results, labels))
    assert correct / len(labels) >= SAMPLE_ACCURACY_FLOOR, \
        [(truth, r.material, round(r.confidence, 3)) for r, truth in zip(results, labels)]
    for result in results:
        assert sum(result.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert result.confidence == max(result.probabilities.values())
        assert result.probabilities[result.material] == result.confidence


def test_batch_gives_same_results_as_single_images(classifier, samples):
    images, _ = samples
    batched = classifier.classify(images)
    for image, in_batch in zip(images, batched):
        alone = classifier.classify([image])[0]
        assert alone.material == in_batch.material
        np.testing.assert_allclose(list(alone.probabilities.values()),
                                   list(in_batch.probabilities.values()), atol=1e-5)


def test_detector_style_crops_grayscale_and_odd_sizes_are_handled(classifier, samples):
    image = samples[0][0]
    height, width = image.shape[:2]
    crops = [
        crop_for_box(image, (0.2 * width, 0.2 * height, 0.8 * width, 0.8 * height)),
        crop_for_box(image, (-30, -30, 0.5 * width, 0.5 * height)),  # clamped at the corner
        crop_for_box(image, (10, 10, 13, 11), pad_fraction=0.0),  # 3 x 1 pixels
        np.asarray(Image.fromarray(image).convert('L')),  # grayscale camera
        np.dstack([image, np.full((height, width), 255, np.uint8)]),  # RGBA
    ]
    results = classifier.classify(crops)
    assert len(results) == len(crops)
    for result in results:
        assert result.material in CLASSES
        assert 0 < result.confidence <= 1


def test_rgba_image_classified_as_its_rgb_part(classifier, samples):
    image = samples[0][0]
    rgba = np.dstack([image, np.zeros(image.shape[:2], np.uint8)])
    plain, with_alpha = classifier.classify([image, rgba])
    assert plain.material == with_alpha.material
    np.testing.assert_allclose(list(plain.probabilities.values()),
                               list(with_alpha.probabilities.values()), atol=1e-6)


def test_wrong_configured_class_list_is_refused():
    from edge_perception.core.material import MaterialModelError
    with pytest.raises(MaterialModelError, match='do not match'):
        MaterialClassifier(class_names=['metal', 'paper', 'plastic'])


def test_eval_material_cli_agrees_with_classifier(tmp_path, classifier, samples):
    images, labels = samples
    expected_correct = sum(r.material == truth
                           for r, truth in zip(classifier.classify(images), labels))
    out = tmp_path / 'eval.json'
    assert cli.main(['eval-material', '--data', str(SAMPLES), '--json', str(out)]) == 0
    metrics = json.loads(out.read_text())
    confusion = np.array(metrics['confusion_matrix'])
    assert metrics['class_names'] == CLASSES
    assert metrics['n_images'] == 12 and confusion.sum() == 12
    assert confusion.sum(axis=1).tolist() == [2] * 6
    assert metrics['top1'] == pytest.approx(expected_correct / 12)
    assert metrics['top1'] == pytest.approx(np.trace(confusion) / 12)
    for index, name in enumerate(CLASSES):
        assert metrics['per_class_recall'][name] == pytest.approx(confusion[index, index] / 2)


def test_eval_material_cli_refuses_unknown_class_folder(tmp_path, capsys):
    (tmp_path / 'styrofoam').mkdir()
    Image.new('RGB', (8, 8)).save(tmp_path / 'styrofoam' / 'a.jpg')
    code = cli.main(['eval-material', '--data', str(tmp_path), '--json', str(tmp_path / 'o')])
    assert code == 2
    assert 'styrofoam' in capsys.readouterr().err
    assert not (tmp_path / 'o').exists()
