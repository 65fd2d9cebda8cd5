"""training/waste_seg/checkpoint_variants.py: weight averages and the flip-TTA wrapper.

Known answers on tiny torch modules: the average of two checkpoints is their midpoint (integer
buffers such as BatchNorm's num_batches_tracked are taken from the first, not averaged), and the
flip-TTA model is mirror-equivariant, f(mirror(x)) = mirror(f(x)), which the plain model is not.
"""
from pathlib import Path
import sys

import pytest

torch = pytest.importorskip('torch', reason='torch is a training-time dependency')
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'training' / 'waste_seg'))
checkpoint_variants = pytest.importorskip(
    'checkpoint_variants', reason='the waste-seg training dependencies are not installed')


def tiny_net(seed):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                              torch.nn.Conv2d(4, 7, (1, 3), padding=(0, 1)))
    net[1].running_mean.uniform_(-1, 1)
    net[1].num_batches_tracked.fill_(10 + seed)
    return net


def test_average_is_the_midpoint_and_keeps_integer_buffers_of_the_first(tmp_path):
    paths = []
    for seed in (0, 1):
        paths.append(tmp_path / f'{seed}.pt')
        torch.save({'state_dict': tiny_net(seed).state_dict(), 'step': 2000 + seed}, paths[-1])
    a, b = (tiny_net(s).state_dict() for s in (0, 1))
    soup = checkpoint_variants.average(paths)
    assert soup['step'] == 2000
    for key, value in soup['state_dict'].items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (a[key] + b[key]) / 2)
        else:
            assert torch.equal(value, a[key])
    assert int(soup['state_dict']['1.num_batches_tracked']) == 10


def test_flip_tta_is_mirror_equivariant_where_the_model_is_not():
    net = tiny_net(3).eval()
    tta = checkpoint_variants.FlipTTA(net).eval()
    x = torch.rand(2, 3, 8, 12)

    def mirror(t):
        return torch.flip(t, dims=[3])

    with torch.no_grad():
        assert not torch.allclose(net(mirror(x)), mirror(net(x)), atol=1e-4)
        torch.testing.assert_close(tta(mirror(x)), mirror(tta(x)))
        torch.testing.assert_close(tta(x), (net(x) + mirror(net(mirror(x)))) / 2)
