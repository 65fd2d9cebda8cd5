"""Three small crack-segmentation experts of different design, and the gate CNN (PyTorch).

Each expert maps a normalised RGB image (N, 3, H, W), H and W multiples of 16, to crack logits
(N, 1, H, W). They are deliberately tiny (tens of thousands of parameters) so that 5-fold training
fits a CPU budget and one expert runs at >= 10 FPS at 512x512 on two cores.

- TinyUNet: encoder-decoder with skip connections (Ronneberger et al., 2015), 3 down-steps.
- DilatedFCN: stride-4 stem, a stack of dilated residual convolutions (context without pooling,
  Yu and Koltun, 2016), learned upsampling with a full-resolution skip.
- SideOutputNet: DeepCrack-style (Liu et al., 2019): an encoder whose every scale emits a side
  prediction; the upsampled side outputs are fused by a 1x1 convolution.
- GateCNN: a small classifier over a downscaled image that outputs one logit per expert.
"""
import torch
from torch import nn
import torch.nn.functional as F


def conv_bn_relu(c_in, c_out, dilation=1, stride=1):
    """3x3 convolution, batch norm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=dilation, dilation=dilation,
                  bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True))


class TinyUNet(nn.Module):
    """U-Net, widths (c, 2c, 4c, 6c), one convolution at full resolution, bilinear upsampling."""

    def __init__(self, c=8):
        super().__init__()
        self.enc0 = conv_bn_relu(3, c)
        self.enc1 = nn.Sequential(conv_bn_relu(c, 2 * c, stride=2), conv_bn_relu(2 * c, 2 * c))
        self.enc2 = nn.Sequential(conv_bn_relu(2 * c, 4 * c, stride=2),
                                  conv_bn_relu(4 * c, 4 * c))
        self.enc3 = nn.Sequential(conv_bn_relu(4 * c, 6 * c, stride=2),
                                  conv_bn_relu(6 * c, 6 * c))
        self.dec2 = conv_bn_relu(6 * c + 4 * c, 4 * c)
        self.dec1 = conv_bn_relu(4 * c + 2 * c, 2 * c)
        self.dec0 = conv_bn_relu(2 * c + c, c)
        self.head = nn.Conv2d(c, 1, 1)

    def forward(self, x):
        """Crack logits at input resolution."""
        e0 = self.enc0(x)
        e1 = self.enc1(e0)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2.0, mode='bilinear'), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode='bilinear'), e1], 1))
        d0 = self.dec0(torch.cat([F.interpolate(d1, scale_factor=2.0, mode='bilinear'), e0], 1))
        return self.head(d0)


class DilatedResidual(nn.Module):
    """Two dilated 3x3 convolutions with a residual connection."""

    def __init__(self, c, dilation):
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_relu(c, c, dilation=dilation),
            nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(c))

    def forward(self, x):
        """Return ReLU(x + body(x))."""
        return F.relu(x + self.body(x))


class DilatedFCN(nn.Module):
    """Full-resolution features, stride-4 dilated residual context, full-resolution refinement."""

    def __init__(self, c=24, dilations=(1, 2, 4, 8)):
        super().__init__()
        self.full = conv_bn_relu(3, 8)
        self.stem = nn.Sequential(conv_bn_relu(8, 16, stride=2), conv_bn_relu(16, c, stride=2))
        self.context = nn.Sequential(*[DilatedResidual(c, d) for d in dilations])
        self.squeeze = nn.Conv2d(c, 8, 1)
        self.refine = nn.Sequential(conv_bn_relu(16, 8), nn.Conv2d(8, 1, 1))

    def forward(self, x):
        """Crack logits at input resolution."""
        f = self.full(x)
        ctx = self.squeeze(self.context(self.stem(f)))
        up = F.interpolate(ctx, scale_factor=4.0, mode='bilinear')
        return self.refine(torch.cat([up, f], 1))


class SideOutputNet(nn.Module):
    """DeepCrack-style encoder with a side prediction at each of four scales, fused by 1x1 conv."""

    def __init__(self, c=8):
        super().__init__()
        widths = (c, 2 * c, 4 * c, 6 * c)
        self.stages = nn.ModuleList()
        c_in = 3
        for i, w in enumerate(widths):
            self.stages.append(nn.Sequential(conv_bn_relu(c_in, w, stride=1 if i == 0 else 2),
                                             conv_bn_relu(w, w)))
            c_in = w
        self.sides = nn.ModuleList([nn.Conv2d(w, 1, 1) for w in widths])
        self.fuse = nn.Conv2d(len(widths), 1, 1)

    def forward(self, x, return_sides=False):
        """Fused crack logits at input resolution (and the side logits when asked)."""
        sides = []
        f = x
        for i, (stage, side) in enumerate(zip(self.stages, self.sides)):
            f = stage(f)
            s = side(f)
            if i:
                s = F.interpolate(s, scale_factor=float(2 ** i), mode='bilinear')
            sides.append(s)
        fused = self.fuse(torch.cat(sides, 1))
        if return_sides:
            return fused, sides
        return fused


class GateCNN(nn.Module):
    """Small image classifier: one logit per expert (softmax gives the gate weights)."""

    def __init__(self, n_experts, c=16):
        super().__init__()
        self.features = nn.Sequential(
            conv_bn_relu(3, c, stride=2), conv_bn_relu(c, c),
            conv_bn_relu(c, 2 * c, stride=2), conv_bn_relu(2 * c, 2 * c, stride=2),
            conv_bn_relu(2 * c, 4 * c, stride=2))
        self.head = nn.Linear(4 * c, n_experts)

    def forward(self, x):
        """Expert logits (N, n_experts)."""
        return self.head(self.features(x).mean(dim=(2, 3)))


EXPERTS = {
    'unet': TinyUNet,
    'dilated': DilatedFCN,
    'sideout': SideOutputNet,
}


def build_expert(name):
    """Return a fresh expert network by name (one of EXPERTS)."""
    if name not in EXPERTS:
        raise ValueError(f'unknown expert {name!r}; known: {sorted(EXPERTS)}')
    return EXPERTS[name]()


def count_parameters(model):
    """Return the number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
