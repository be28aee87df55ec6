r"""2D TransMorph (Chen et al., 2022): a Swin Transformer encoder with a convolutional decoder.

1. **Patch embedding**: the stacked pair (2 channels) is cut into ``patch x patch`` patches by a
   strided convolution into ``dim`` features (then LayerNorm).
2. **Swin stages**: each stage has ``depths[i]`` blocks of windowed multi-head self-attention
   over ``window x window`` tokens with a learned *relative position bias*; every second block
   shifts the windows by half a window (with an attention mask for the wrapped-around tokens), so
   information crosses window borders. Between stages, *patch merging* halves the resolution and
   doubles the features (2x2 neighbours concatenated, LayerNorm, linear ``4C -> 2C``).
3. **Decoder**: from the coarsest stage up, 2x nearest upsampling, concatenation with the
   encoder feature of that scale, two 3x3 conv + LeakyReLU; below the patch size, the skips are
   small convolutions of the (average-pooled) input pair, as in TransMorph. A 3x3 *registration
   head* outputs the displacement (pixels), which :func:`regkit.spatial.warp` applies.

Convention
----------
- ``forward(moving, fixed)``: ``N,1,H,W`` each. The token grid must split into whole windows at
  every stage, so the pair is **padded** (bottom/right, border replicated) to a multiple of
  ``patch * 2**(stages-1) * window`` and the field cropped back (28 px MNIST runs at 32 px).
- Returns :class:`regkit.RegResult`, ``disp`` ``N,2,H,W`` in pixels (x then y, pull).

Configurations (:data:`CONFIGS`, our choices; the GPEReg-Net paper gives none):

- ``transmorph_256`` for 256x256 patches: patch 4, dim 12, depths (2, 2, 4) (Swin-T's deeper third
  stage), heads (2, 4, 8), window 8 (a 64x64 token grid, 8x8 windows): 178,058 parameters. Sized
  to the GPEReg-Net paper's Table 2, which lists 0.17 M for its TransMorph without giving the
  configuration; the original TransMorph (3D, dim 96) has about 46 M.
- ``transmorph_mnist`` for 28/32 px: patch 2, dim 16, depths (2, 2), heads (2, 4), window 4
  (a 16x16 token grid at 32 px): 46,870 parameters.

Getting a trained model: ``Trainer(transmorph_mnist(), RegistrationObjective(...), cfg).fit(pairs)``,
then ``regkit.register(moving, fixed, method="transmorph", model=trainer.model)`` or
``model="<checkpoint_dir>/last.pt"``.

>>> import torch
>>> net = transmorph_mnist()
>>> res = net(torch.rand(2, 1, 28, 28), torch.rand(2, 1, 28, 28))
>>> tuple(res.disp.shape), sum(p.numel() for p in net.parameters())
((2, 2, 28, 28), 46870)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import spatial
from .._checks import check_pair, check_positive
from ..registry import RegResult, method
from .blocks import ConvBlock, crop_to, pad_to_multiple, run_model, upsample2

__all__ = ["TransMorph", "SwinBlock", "WindowAttention", "PatchMerging", "CONFIGS", "transmorph_256", "transmorph_mnist"]

CONFIGS = {
    "transmorph_256": dict(patch=4, dim=12, depths=(2, 2, 4), heads=(2, 4, 8), window=8),
    "transmorph_mnist": dict(patch=2, dim=16, depths=(2, 2), heads=(2, 4), window=4),
}
"""Named configurations (constructor arguments of :class:`TransMorph`)."""


def _windows(x: Tensor, w: int) -> Tensor:
    """``B,H,W,C`` -> ``B*nW, w*w, C`` (windows in row-major order)."""
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, w * w, c)


def _unwindows(x: Tensor, w: int, b: int, h: int, wd: int) -> Tensor:
    c = x.shape[-1]
    x = x.view(b, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, wd, c)


def _shift_mask(h: int, w: int, window: int, shift: int, device) -> Tensor:
    """Additive mask ``nW, n, n`` (0 or -100) that keeps shifted windows from mixing wrapped regions."""
    img = torch.zeros(1, h, w, 1, device=device)
    cnt = 0
    for hs in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for ws in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            img[:, hs, ws, :] = cnt
            cnt += 1
    m = _windows(img, window).squeeze(-1)  # nW, n
    diff = m[:, None, :] - m[:, :, None]
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside ``window x window`` token windows, with relative position bias."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads, self.window = heads, window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.bias_table, std=0.02)
        ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
        coords = torch.stack((ys.flatten(), xs.flatten()))  # 2, n
        rel = (coords[:, :, None] - coords[:, None, :]) + (window - 1)  # 2, n, n
        self.register_buffer("rel_index", rel[0] * (2 * window - 1) + rel[1], persistent=False)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        bw, n, c = x.shape
        q, k, v = self.qkv(x).view(bw, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        bias = self.bias_table[self.rel_index.view(-1)].view(n, n, self.heads).permute(2, 0, 1)  # heads,n,n
        bias = bias[None]
        if mask is not None:  # nW,n,n -> (B*nW),heads,n,n
            nw = mask.shape[0]
            bias = (bias.unsqueeze(0) + mask[None, :, None]).expand(bw // nw, nw, self.heads, n, n)
            bias = bias.reshape(bw, self.heads, n, n)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(bw, n, c))


class SwinBlock(nn.Module):
    """Pre-norm Swin block: (shifted) window attention + MLP (ratio 4, GELU), both residual."""

    def __init__(self, dim: int, heads: int, window: int, shift: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, heads, window)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor) -> Tensor:  # B,H,W,C
        b, h, w, c = x.shape
        win = min(self.window, h, w)
        shift = self.shift if min(h, w) > self.window else 0
        y = self.norm1(x)
        mask = None
        if shift:
            y = torch.roll(y, (-shift, -shift), (1, 2))
            mask = _shift_mask(h, w, win, shift, x.device)
        y = _unwindows(self.attn(_windows(y, win), mask), win, b, h, w)
        if shift:
            y = torch.roll(y, (shift, shift), (1, 2))
        x = x + y
        return x + self.mlp(self.norm2(x))


class PatchMerging(nn.Module):
    """Halve the token grid, double the features: 2x2 neighbours -> LayerNorm(4C) -> Linear(4C, 2C)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduce = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:  # B,H,W,C
        x = torch.cat((x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]), -1)
        return self.reduce(self.norm(x))


class _Up(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.conv1 = ConvBlock(cin + cskip, cout)
        self.conv2 = ConvBlock(cout, cout)

    def forward(self, x: Tensor, skip: Tensor) -> Tensor:
        return self.conv2(self.conv1(torch.cat((upsample2(x), skip), 1)))


class TransMorph(nn.Module):
    """2D TransMorph: Swin encoder, conv decoder with skips, displacement head.

    Parameters
    ----------
    patch : int
        Patch size (a power of two).
    dim : int
        Features of the first stage (doubled at each following stage).
    depths, heads : sequences of int
        Swin blocks and attention heads per stage.
    window : int
        Attention window (tokens per side).
    head_channels : int
        Features of the full-resolution skip and of the registration head's input.
    in_channels : int
    """

    def __init__(self, patch: int = 4, dim: int = 12, depths=(2, 2, 4), heads=(2, 4, 8), window: int = 8,
                 head_channels: int = 8, in_channels: int = 1):
        super().__init__()
        for name, v in (("patch", patch), ("dim", dim), ("window", window), ("head_channels", head_channels),
                        ("in_channels", in_channels)):
            check_positive(name, v, integer=True)
        if patch & (patch - 1):
            raise ValueError(f"patch must be a power of two, got {patch}")
        depths, heads = tuple(int(d) for d in depths), tuple(int(h) for h in heads)
        if len(depths) != len(heads) or not depths:
            raise ValueError(f"depths and heads must have the same non-zero length, got {depths} and {heads}")
        self.config = dict(patch=patch, dim=dim, depths=list(depths), heads=list(heads), window=window,
                           head_channels=head_channels, in_channels=in_channels)
        self.patch, self.window, self.in_channels = patch, window, in_channels
        cin = 2 * in_channels
        self.embed = nn.Conv2d(cin, dim, patch, stride=patch)
        self.embed_norm = nn.LayerNorm(dim)
        self.stages, self.merges, self.out_norms = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        dims = [dim * 2**i for i in range(len(depths))]
        for i, (d, h) in enumerate(zip(depths, heads)):
            self.stages.append(nn.Sequential(*[
                SwinBlock(dims[i], h, window, shift=(window // 2) * (j % 2)) for j in range(d)
            ]))
            self.out_norms.append(nn.LayerNorm(dims[i]))
            if i < len(depths) - 1:
                self.merges.append(PatchMerging(dims[i]))
        # decoder: Swin scales, then the conv-skip scales below the patch size
        self.ups = nn.ModuleList()
        for i in range(len(dims) - 1, 0, -1):
            self.ups.append(_Up(dims[i], dims[i - 1], dims[i - 1]))
        n_fine = int(math.log2(patch))
        fine = [max(head_channels, dim // 2**k) for k in range(1, n_fine + 1)]  # features at patch/2, ..., 1
        if fine:
            fine[-1] = head_channels
        self.skips = nn.ModuleList()
        c = dims[0]
        for k, f in enumerate(fine):
            self.skips.append(ConvBlock(cin, f))
            self.ups.append(_Up(c, f, f))
            c = f
        self.head = nn.Conv2d(c, 2, 3, padding=1)
        nn.init.normal_(self.head.weight, std=1e-5)
        nn.init.zeros_(self.head.bias)

    @property
    def multiple(self) -> int:
        """Input sizes are padded to a multiple of this: ``patch * 2**(stages-1) * window``."""
        return self.patch * 2 ** (len(self.stages) - 1) * self.window

    def forward(self, moving: Tensor, fixed: Tensor) -> RegResult:
        check_pair("moving", moving, "fixed", fixed)
        if moving.shape[1] != self.in_channels:
            raise ValueError(f"moving must have {self.in_channels} channel(s), got shape {tuple(moving.shape)}")
        x, size = pad_to_multiple(torch.cat((moving, fixed), 1), self.multiple)
        t = self.embed_norm(self.embed(x).permute(0, 2, 3, 1))  # B,H/p,W/p,C
        feats = []
        for i, stage in enumerate(self.stages):
            t = stage(t)
            feats.append(self.out_norms[i](t).permute(0, 3, 1, 2))
            if i < len(self.merges):
                t = self.merges[i](t)
        # conv skips of the input at full, 1/2, ..., 2/patch resolution (finest last)
        fine_inputs, xi = [], x
        for _ in self.skips:
            fine_inputs.append(xi)
            xi = F.avg_pool2d(xi, 2)
        fine_feats = [conv(inp) for conv, inp in zip(self.skips, reversed(fine_inputs))]
        y = feats[-1]
        n_swin = len(self.stages) - 1
        for j, up in enumerate(self.ups):
            skip = feats[n_swin - 1 - j] if j < n_swin else fine_feats[j - n_swin]
            y = up(y, skip)
        disp = crop_to(self.head(y), size).float()
        return RegResult(warped=spatial.warp(moving, disp), disp=disp)


def transmorph_256(**overrides) -> TransMorph:
    """TransMorph sized for 256x256 patches (:data:`CONFIGS` ``["transmorph_256"]``)."""
    return TransMorph(**{**CONFIGS["transmorph_256"], **overrides})


def transmorph_mnist(**overrides) -> TransMorph:
    """TransMorph sized for 28/32 px digits (:data:`CONFIGS` ``["transmorph_mnist"]``)."""
    return TransMorph(**{**CONFIGS["transmorph_mnist"], **overrides})


@method("transmorph", kind="learned", summary="TransMorph (Chen et al. 2022), 2D: Swin encoder + conv decoder -> dense field.")
def _transmorph(moving: Tensor, fixed: Tensor, model=None) -> RegResult:
    """Register with a trained :class:`TransMorph` (``model=`` a module or a Trainer checkpoint path)."""
    return run_model(model, TransMorph, moving, fixed)
