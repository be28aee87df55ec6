r"""GPEReg-Net: deformation-free cross-domain registration by scene-appearance factorisation.

The model never estimates a displacement. It encodes the *moving* image into a 64-channel scene
map (spatial structure, intensity statistics removed by instance normalisation), encodes the
*fixed* image into a 32-number appearance code (global average pooling removes every spatial
position), optionally adds temporal context from neighbouring frames (the GPE module), and
decodes the scene with the fixed image's appearance through AdaIN:

.. math::

    \hat y = D\big(S(m) + \alpha\, g(t),\; A(f)\big),
    \qquad \mathrm{AdaIN}(x, a) = \gamma(a)\,\frac{x - \mu(x)}{\sigma(x)} + \beta(a).

Convention
----------
- ``forward(moving, fixed, frame=None)`` takes ``N,C,H,W`` images in [0, 1] (``C`` =
  ``in_channels``, 1 by default; ``H`` and ``W`` at least 8) and returns
  ``RegResult(warped=output, disp=None)``, the output ``N,C,H,W`` in [0, 1] (sigmoid): there is
  no displacement to return, so nothing downstream may assume one. ``frame`` is the index of
  each pair in its sequence, an ``int`` or a long tensor ``N``; ``None`` means frame 0, a
  sequence start with no neighbours. ``sequence`` (optional, one id per pair) says which
  sequence each pair belongs to, so that frames of different sequences never attend to each
  other.
- The registered method ``"gpereg"`` runs a trained model the same way (eval mode, no grad).
- The output's spatial layout comes from the moving image alone; the fixed image reaches the
  output only through the 32-number code. :mod:`regkit.experiments.controls` tests what that
  implies.

Values the paper leaves open (its extraction lost some, others it never states) are our
choices, all arguments of :class:`GPERegNet` with these defaults:

- scene-encoder widths ``(32, 64, 128, 248)`` with two residual blocks at the bottleneck and
  stride-2 residual blocks for downsampling, chosen so that the whole model has about the
  paper's 3.40 M parameters (3.42 M with ``num_frames=128``);
- appearance-encoder widths ``(16, 32, 64, 128)``, 3x3 kernels, LeakyReLU(0.2), no
  normalisation (normalising would erase the statistics it must capture), FC 128-128-32;
- GPE: frame table ``T = num_frames = 128`` (every window of a FIRE pair, at most 11 x 11 = 121
  in our cut, has its own row; the offline proxy has 9 per pair), sliding window
  ``window = 4`` preceding frames, 4 attention heads, fusion MLP 192-128-64, scale
  ``alpha = 0.1`` (a fixed hyper-parameter);
- past ``T`` frames the learned embedding is *clamped* to its last row (frame ``T - 1``), while
  the sinusoidal encoding and the cross-frame attention keep working at any index (see
  :class:`GPE`);
- the factorisation term compares *instance-normalised* scene maps, because AdaIN normalises
  the decoder's input and the raw maps could otherwise shrink to zero to satisfy it for free.

Example
-------
>>> import torch
>>> net = GPERegNet()
>>> res = net(torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32), frame=torch.tensor([0, 1]))
>>> res.warped.shape, res.disp
(torch.Size([2, 1, 32, 32]), None)
"""

from __future__ import annotations

import math
import zlib

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .. import spatial
from .._checks import check_pair, check_positive
from ..registry import RegResult, method
from .blocks import ConvBlock, as_model

__all__ = [
    "ResBlock",
    "SceneEncoder",
    "AppearanceEncoder",
    "AdaIN",
    "AdaINConvBlock",
    "ImageDecoder",
    "sinusoidal_encoding",
    "FrameCache",
    "GPE",
    "GPERegNet",
    "GPERegObjective",
    "UncertaintyWeighting",
    "normalised_scene_distance",
    "PAPER_PARAMS_M",
]

PAPER_PARAMS_M = 3.40
"""GPEReg-Net's parameter count in the paper (millions)."""

_ACT_SLOPE = 0.2


# ----------------------------------------------------------------------------------------------
# Scene encoder: residual U-Net with instance normalisation
# ----------------------------------------------------------------------------------------------


class ResBlock(nn.Module):
    """Residual block: conv3x3-IN-LeakyReLU-conv3x3-IN plus a (1x1 conv) shortcut, then LeakyReLU.

    ``stride=2`` halves the resolution (in the first conv and in the shortcut). Instance norms
    have no affine parameters and no running statistics, so train and eval behave the same.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = ConvBlock(in_ch, out_ch, stride=stride, norm="instance")
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.norm2 = nn.InstanceNorm2d(out_ch)
        self.skip = (
            nn.Identity() if in_ch == out_ch and stride == 1 else nn.Conv2d(in_ch, out_ch, 1, stride=stride)
        )
        self.act = nn.LeakyReLU(_ACT_SLOPE)

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm2(self.conv2(self.conv1(x)))
        return self.act(y + self.skip(x))


class SceneEncoder(nn.Module):
    """U-Net scene encoder ``N,C,H,W -> N,out_channels,H,W`` with four encoding levels.

    Levels run at ``H, H/2, H/4, H/8`` with ``widths`` channels (stride-2 residual blocks between
    them, ``bottleneck`` residual blocks at the deepest one); the decoder upsamples bilinearly
    (through :func:`regkit.spatial.resize_image`), concatenates the skip of the same level and
    applies a residual block. A final 1x1 convolution gives the scene map. Every block is
    instance-normalised, which strips per-image intensity statistics.
    """

    def __init__(self, in_channels: int = 1, widths=(32, 64, 128, 256), out_channels: int = 64, bottleneck: int = 2):
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"widths must give four encoding levels, got {widths!r}")
        c1, c2, c3, c4 = widths
        self.stem = ConvBlock(in_channels, c1, norm="instance")
        self.enc1 = ResBlock(c1, c1)
        self.enc2 = ResBlock(c1, c2, stride=2)
        self.enc3 = ResBlock(c2, c3, stride=2)
        self.enc4 = nn.Sequential(ResBlock(c3, c4, stride=2), *[ResBlock(c4, c4) for _ in range(bottleneck - 1)])
        self.dec3 = ResBlock(c4 + c3, c3)
        self.dec2 = ResBlock(c3 + c2, c2)
        self.dec1 = ResBlock(c2 + c1, out_channels)
        self.head = nn.Conv2d(out_channels, out_channels, 1)
        self.out_channels = out_channels

    @staticmethod
    def _up_cat(x: Tensor, skip: Tensor) -> Tensor:
        return torch.cat((spatial.resize_image(x, skip.shape[-2:]), skip), 1)

    def forward(self, x: Tensor) -> Tensor:
        s1 = self.enc1(self.stem(x))
        s2 = self.enc2(s1)
        s3 = self.enc3(s2)
        s4 = self.enc4(s3)
        y = self.dec3(self._up_cat(s4, s3))
        y = self.dec2(self._up_cat(y, s2))
        y = self.dec1(self._up_cat(y, s1))
        return self.head(y)


# ----------------------------------------------------------------------------------------------
# Appearance encoder and AdaIN decoder
# ----------------------------------------------------------------------------------------------


class AppearanceEncoder(nn.Module):
    """Global appearance code ``N,C,H,W -> N,code_dim``: four stride-2 convs, global average pool, two FCs.

    No normalisation layers: the code must keep the image's intensity statistics. Global average
    pooling throws away where anything is, so the code carries no spatial layout (translating the
    image changes it only through what enters or leaves at the borders).
    """

    def __init__(self, in_channels: int = 1, widths=(16, 32, 64, 128), code_dim: int = 32, hidden: int = 128):
        super().__init__()
        if len(widths) != 4:
            raise ValueError(f"widths must give four stride-2 convolutions, got {widths!r}")
        layers, prev = [], in_channels
        for w in widths:
            layers.append(ConvBlock(prev, w, stride=2))
            prev = w
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(prev, hidden), nn.LeakyReLU(_ACT_SLOPE), nn.Linear(hidden, code_dim))
        self.code_dim = code_dim

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.convs(x).mean(dim=(2, 3)))


class AdaIN(nn.Module):
    r"""Adaptive instance normalisation :math:`\gamma(a)\,\mathrm{IN}(x) + \beta(a)`, with
    :math:`(\gamma, \beta)` an affine function of the code ``a`` (``N,code_dim``).

    :math:`\gamma` is parametrised as ``1 + linear(a)`` so that a zero code is the identity
    modulation at initialisation.
    """

    def __init__(self, channels: int, code_dim: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.affine = nn.Linear(code_dim, 2 * channels)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        gamma, beta = self.affine(code).chunk(2, dim=1)
        return (1 + gamma[..., None, None]) * self.norm(x) + beta[..., None, None]


class AdaINConvBlock(nn.Module):
    """conv3x3 -> AdaIN(code) -> LeakyReLU."""

    def __init__(self, in_ch: int, out_ch: int, code_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.adain = AdaIN(out_ch, code_dim)
        self.act = nn.LeakyReLU(_ACT_SLOPE)

    def forward(self, x: Tensor, code: Tensor) -> Tensor:
        return self.act(self.adain(self.conv(x), code))


def _to_image(head: nn.Module, x: Tensor) -> Tensor:
    """The last 1x1 convolution and the sigmoid, in float32 even under autocast (the output is an image)."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        return torch.sigmoid(head(x.float()))


class ImageDecoder(nn.Module):
    """Scene map + appearance code -> image: AdaIN-conv blocks (64, 32, 16 channels), 1x1 conv, sigmoid.

    The last convolution and the sigmoid run in float32, also under autocast.
    """

    def __init__(self, in_channels: int = 64, code_dim: int = 32, widths=(64, 32, 16), out_channels: int = 1):
        super().__init__()
        blocks, prev = [], in_channels
        for w in widths:
            blocks.append(AdaINConvBlock(prev, w, code_dim))
            prev = w
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Conv2d(prev, out_channels, 1)

    def forward(self, scene: Tensor, code: Tensor) -> Tensor:
        x = scene
        for block in self.blocks:
            x = block(x, code)
        return _to_image(self.out, x)


# ----------------------------------------------------------------------------------------------
# GPE: learned + sinusoidal position embedding and cross-frame attention over a sliding window
# ----------------------------------------------------------------------------------------------


def sinusoidal_encoding(frames: Tensor, dim: int) -> Tensor:
    r"""Transformer position encoding of integer ``frames`` (shape ``N``) -> ``N,dim`` float32.

    :math:`PE(t, 2i) = \sin(t / 10000^{2i/d})`, :math:`PE(t, 2i+1) = \cos(t / 10000^{2i/d})`;
    defined for every ``t >= 0``, including past the frame table.

    >>> sinusoidal_encoding(torch.tensor([0]), 4)
    tensor([[0., 1., 0., 1.]])
    """
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    t = frames.to(torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, device=frames.device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(frames.shape[0], dim, device=frames.device)
    pe[:, 0::2] = torch.sin(t * freq)
    pe[:, 1::2] = torch.cos(t * freq)
    return pe


class FrameCache:
    """Running cache of the pooled scene features of recent frames, per sequence (detached, CPU).

    ``update(frames, feats, sequences)`` adds a batch of frames. For each sequence in the batch, a
    smallest frame index that is not larger than the largest one cached for that sequence
    restarts it: its cached entries are dropped first (:meth:`restart`). Afterwards only the
    entries within ``window`` frames of their sequence's newest frame, and only the sequences of
    the latest batch, are kept, so memory stays bounded however long a stream runs. Without
    ``sequences`` every frame belongs to sequence 0.

    >>> c = FrameCache(2)
    >>> c.update(torch.tensor([0, 1, 2]), torch.zeros(3, 4)); c.frames.tolist()
    [1, 2]
    >>> c.update(torch.tensor([0]), torch.ones(1, 4)); c.frames.tolist()   # a new sequence
    [0]
    """

    def __init__(self, window: int):
        check_positive("window", window, integer=True, allow_zero=True)
        self.window = window
        self.reset()

    def reset(self) -> None:
        self.frames: Tensor = torch.zeros(0, dtype=torch.long)
        self.sequences: Tensor = torch.zeros(0, dtype=torch.long)
        self.feats: Tensor | None = None

    def __len__(self) -> int:
        return int(self.frames.numel())

    def restart(self, frames: Tensor, sequences: Tensor | None = None) -> None:
        """Drop the cached entries of every sequence of this batch that starts again."""
        if not len(self):
            return
        frames = frames.detach().to("cpu", torch.long)
        seqs = torch.zeros_like(frames) if sequences is None else sequences.detach().to("cpu", torch.long)
        drop = torch.zeros(len(self), dtype=torch.bool)
        for sq in seqs.unique():
            cached = self.sequences == sq
            if bool(cached.any()) and int(frames[seqs == sq].min()) <= int(self.frames[cached].max()):
                drop |= cached
        if bool(drop.any()):
            self._keep(~drop)

    def _keep(self, keep: Tensor) -> None:
        self.frames, self.sequences = self.frames[keep], self.sequences[keep]
        self.feats = self.feats[keep] if self.feats is not None else None

    def entries(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Cached ``(frames M, sequences M, feats M,D)`` on ``like``'s device and dtype."""
        if self.feats is None or len(self) == 0:
            empty = torch.zeros(0, dtype=torch.long, device=like.device)
            return empty, empty, like.new_zeros(0, like.shape[-1])
        return (self.frames.to(like.device), self.sequences.to(like.device),
                self.feats.to(device=like.device, dtype=like.dtype))

    def update(self, frames: Tensor, feats: Tensor, sequences: Tensor | None = None) -> None:
        frames = frames.detach().to("cpu", torch.long)
        seqs = torch.zeros_like(frames) if sequences is None else sequences.detach().to("cpu", torch.long)
        feats = feats.detach().float().cpu()
        self.restart(frames, seqs)
        if len(self):
            self.frames = torch.cat((self.frames, frames))
            self.sequences = torch.cat((self.sequences, seqs))
            self.feats = torch.cat((self.feats, feats))
        else:
            self.frames, self.sequences, self.feats = frames, seqs, feats
        keep = torch.isin(self.sequences, seqs)
        for sq in seqs.unique():
            mine = self.sequences == sq
            keep &= ~mine | (self.frames > int(self.frames[mine].max()) - self.window)
        self._keep(keep)


class GPE(nn.Module):
    r"""Global Position Encoding: temporal context added to the scene map.

    For frame ``t`` with scene map ``s`` (``N,D,H,W``) and pooled features :math:`q = \bar s`:

    .. math::

        g = \mathrm{MLP}\big([E[\min(t, T-1)],\ \mathrm{PE}(t),\ \mathrm{MHA}(q, K_t, K_t)]\big),
        \qquad s' = s + \alpha\, g

    with :math:`K_t` the pooled features of the frame itself and of its neighbours, the frames
    :math:`t'` of the same sequence with :math:`0 < t - t' \le` ``window``. Neighbours come from
    the same batch and, in eval mode, from a running :class:`FrameCache` of earlier calls
    (streaming inference over a sequence); training uses the batch alone, so a training step
    does not depend on the steps before it. The frame itself is always a key, so at a sequence
    start (no neighbours) the
    attention reduces to a projection of the frame's own features. ``sequences`` (one integer per
    item, e.g. FIRE-Reg-256's image ``pair``) keeps frames of different sequences apart, in a
    batch and in the cache; without it every frame belongs to one sequence and neighbours are
    found by frame index alone.

    Past the table (``t >= T``): the learned embedding is clamped to its last row, so every such
    frame shares ``E[T-1]``; the sinusoidal encoding still distinguishes them and the window and
    cache work as before. Nothing fails and nothing wraps around.
    """

    def __init__(
        self, channels: int = 64, num_frames: int = 128, window: int = 4, heads: int = 4,
        hidden: int = 128, alpha: float = 0.1,
    ):
        super().__init__()
        check_positive("num_frames", num_frames, integer=True)
        check_positive("window", window, integer=True, allow_zero=True)
        check_positive("heads", heads, integer=True)
        check_positive("alpha", alpha, allow_zero=True)
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.channels, self.num_frames, self.window, self.alpha = channels, num_frames, window, float(alpha)
        self.embedding = nn.Embedding(num_frames, channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(3 * channels, hidden), nn.GELU(), nn.Linear(hidden, channels))
        self.cache = FrameCache(window)

    def reset_cache(self) -> None:
        """Forget the frames seen so far (call between sequences when streaming in eval mode)."""
        self.cache.reset()

    def learned_embedding(self, frames: Tensor) -> Tensor:
        """Rows of the frame table for ``frames`` (long ``N``); indices past ``T - 1`` use row ``T - 1``."""
        return self.embedding(frames.clamp_max(self.num_frames - 1))

    def context(self, scene: Tensor, frames: Tensor, sequences: Tensor | None = None) -> Tensor:
        """The vector ``g`` (``N,D``) for a scene batch ``N,D,H,W`` at ``frames`` (long ``N``)."""
        pooled = scene.mean(dim=(2, 3))  # N,D
        n = pooled.shape[0]
        seqs = torch.zeros_like(frames) if sequences is None else sequences.to(frames.device)
        use_cache = not self.training and self.window > 0
        if use_cache:
            self.cache.restart(frames, seqs)
            cf, cs, cx = self.cache.entries(pooled)
        else:
            cf, cs, cx = frames[:0], seqs[:0], pooled[:0]
        key_frames, key_seqs = torch.cat((frames, cf)), torch.cat((seqs, cs))  # K = N + M
        keys = torch.cat((pooled, cx.to(pooled.dtype)))  # K,D
        gap = frames[:, None] - key_frames[None, :]  # N,K
        allowed = (gap > 0) & (gap <= self.window) & (seqs[:, None] == key_seqs[None, :])
        allowed[:, :n] |= torch.eye(n, dtype=torch.bool, device=frames.device)
        attn_out, _ = self.attn(
            pooled[:, None, :], keys.expand(n, -1, -1), keys.expand(n, -1, -1),
            key_padding_mask=~allowed, need_weights=False,
        )
        if use_cache:
            self.cache.update(frames, pooled, seqs)
        learned = self.learned_embedding(frames)
        sinus = sinusoidal_encoding(frames, self.channels).to(pooled.dtype)
        return self.mlp(torch.cat((learned.to(pooled.dtype), sinus, attn_out[:, 0]), dim=1))

    def forward(self, scene: Tensor, frames: Tensor, sequences: Tensor | None = None) -> Tensor:
        return scene + self.alpha * self.context(scene, frames, sequences)[..., None, None]


# ----------------------------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------------------------


def _frames(frame, n: int, device) -> Tensor:
    """Validate ``frame`` (None, int or long tensor ``N``) -> long tensor ``N`` on ``device``."""
    if frame is None:
        return torch.zeros(n, dtype=torch.long, device=device)
    if isinstance(frame, bool):
        raise TypeError(f"frame must be an int or an integer tensor of shape (N,), got {frame!r}")
    if isinstance(frame, int):
        frame = torch.full((n,), frame, dtype=torch.long)
    if not isinstance(frame, Tensor) or frame.is_floating_point() or frame.dtype == torch.bool:
        raise TypeError(f"frame must be an int or an integer tensor of shape (N,), got {frame!r}")
    if frame.shape != (n,):
        raise ValueError(f"frame must have shape ({n},), one index per pair, got {tuple(frame.shape)}")
    if bool((frame < 0).any()):
        raise ValueError(f"frame indices must be non-negative, got {frame.tolist()}")
    return frame.to(device=device, dtype=torch.long)


def _sequences(sequence, n: int, device) -> Tensor | None:
    """Validate ``sequence`` (None, integer tensor ``N`` or a list of N ids) -> long tensor ``N`` or None.

    Non-integer ids (e.g. FIRE's pair names) are mapped to integers by CRC-32 of their text, which
    is the same in every call and every process.
    """
    if sequence is None:
        return None
    if isinstance(sequence, Tensor):
        if sequence.is_floating_point() or sequence.dtype == torch.bool or sequence.shape != (n,):
            raise ValueError(
                f"sequence must be an integer tensor of shape ({n},), got {sequence.dtype} {tuple(sequence.shape)}"
            )
        return sequence.to(device=device, dtype=torch.long)
    if isinstance(sequence, (list, tuple)) and len(sequence) == n:
        ids = [v if isinstance(v, int) and not isinstance(v, bool) else zlib.crc32(str(v).encode()) for v in sequence]
        return torch.tensor(ids, dtype=torch.long, device=device)
    raise ValueError(f"sequence must be None, an integer tensor of shape ({n},) or a list of {n} ids, got {sequence!r}")


class GPERegNet(nn.Module):
    """Scene encoder (moving) + appearance encoder (fixed) + GPE + AdaIN decoder.

    Parameters
    ----------
    in_channels : int
        Image channels (1 for the book's grey images).
    scene_widths, appearance_widths, decoder_widths : tuples of int
        Channel widths (our choices, see the module docstring; the decoder's are the paper's).
    scene_channels, code_dim : int
        64 and 32 in the paper.
    gpe : bool
        ``False`` gives the ablation without temporal context (no GPE parameters at all).
    num_frames, window, heads, alpha :
        GPE settings (:class:`GPE`).
    """

    def __init__(
        self,
        in_channels: int = 1,
        scene_widths=(32, 64, 128, 248),
        appearance_widths=(16, 32, 64, 128),
        decoder_widths=(64, 32, 16),
        scene_channels: int = 64,
        code_dim: int = 32,
        bottleneck: int = 2,
        gpe: bool = True,
        num_frames: int = 128,
        window: int = 4,
        heads: int = 4,
        alpha: float = 0.1,
    ):
        super().__init__()
        self.config = {  # constructor arguments, stored in checkpoints (rebuilt by blocks.as_model)
            "in_channels": in_channels, "scene_widths": list(scene_widths),
            "appearance_widths": list(appearance_widths), "decoder_widths": list(decoder_widths),
            "scene_channels": scene_channels, "code_dim": code_dim, "bottleneck": bottleneck, "gpe": gpe,
            "num_frames": num_frames, "window": window, "heads": heads, "alpha": alpha,
        }
        self.in_channels = in_channels
        self.scene = SceneEncoder(in_channels, scene_widths, scene_channels, bottleneck)
        self.appearance = AppearanceEncoder(in_channels, appearance_widths, code_dim)
        self.gpe = GPE(scene_channels, num_frames, window, heads, alpha=alpha) if gpe else None
        self.decoder = ImageDecoder(scene_channels, code_dim, decoder_widths, in_channels)

    def reset_cache(self) -> None:
        """Forget the GPE's running frame cache (no-op without GPE)."""
        if self.gpe is not None:
            self.gpe.reset_cache()

    def _check(self, moving: Tensor, fixed: Tensor) -> None:
        check_pair("moving", moving, "fixed", fixed)
        if moving.shape[1] != self.in_channels:
            raise ValueError(f"moving must have {self.in_channels} channel(s), got shape {tuple(moving.shape)}")
        if min(moving.shape[-2:]) < 8:
            raise ValueError(f"moving must be at least 8x8 pixels, got {tuple(moving.shape[-2:])}")

    def parts(self, moving: Tensor, fixed: Tensor, frame=None, sequence=None) -> dict:
        """Every intermediate the objective needs: ``output``, ``scene`` (before GPE), ``code``."""
        self._check(moving, fixed)
        frames = _frames(frame, moving.shape[0], moving.device)
        seqs = _sequences(sequence, moving.shape[0], moving.device)
        scene = self.scene(moving)
        code = self.appearance(fixed)
        ctx = self.gpe(scene, frames, seqs) if self.gpe is not None else scene
        return {"output": self.decoder(ctx, code), "scene": scene, "code": code}

    def forward(self, moving: Tensor, fixed: Tensor, frame=None, sequence=None) -> RegResult:
        return RegResult(warped=self.parts(moving, fixed, frame, sequence)["output"], disp=None)


# ----------------------------------------------------------------------------------------------
# Objective: reconstruction + lambda * factorisation, lambda by uncertainty weighting
# ----------------------------------------------------------------------------------------------


def normalised_scene_distance(a: Tensor, b: Tensor) -> Tensor:
    """Mean squared difference of two scene maps after instance normalisation (float32, scalar).

    Instance normalisation makes the term blind to a common shrinking of the maps, which AdaIN
    would not notice either; 0 means the same spatial pattern in every channel.
    """
    with torch.autocast(device_type=a.device.type, enabled=False):
        return F.mse_loss(F.instance_norm(a.float()), F.instance_norm(b.float()))


class UncertaintyWeighting(nn.Module):
    r"""Homoscedastic-uncertainty multi-task weighting (Kendall, Gal and Cipolla, 2018).

    With learned log-variances :math:`s_i`:
    :math:`L = \sum_i \tfrac12 e^{-s_i} L_i + \tfrac12 s_i`. The effective weight of task ``i``
    relative to task 0 is :math:`e^{s_0 - s_i}`. The log-variances start at 0 (equal weights).

    >>> w = UncertaintyWeighting(2)
    >>> float(w(torch.tensor([1.0, 3.0])).detach())
    2.0
    """

    def __init__(self, tasks: int):
        super().__init__()
        self.log_vars = nn.Parameter(torch.zeros(tasks))

    def forward(self, losses: Tensor) -> Tensor:
        s = self.log_vars.float()
        return (0.5 * torch.exp(-s) * losses.float() + 0.5 * s).sum()

    def relative_weights(self) -> Tensor:
        """:math:`e^{s_0 - s_i}` for each task (1 for task 0)."""
        s = self.log_vars.detach().float()
        return torch.exp(s[0] - s)


class GPERegObjective(nn.Module):
    r"""GPEReg-Net's loss :math:`L_{rec} + \lambda L_{fact}` with :math:`\lambda` learned.

    - :math:`L_{rec}` = L1 between the output and the fixed image (our choice of pixel loss);
    - :math:`L_{fact}` = :func:`normalised_scene_distance` between the scene maps of the moving
      and of the fixed image (the same scene encoder, before GPE);
    - the two are balanced by :class:`UncertaintyWeighting`, whose log-variances are this
      module's parameters (give them to the optimiser); :math:`\lambda = e^{s_{rec} - s_{fact}}`.

    Called as ``objective(model, batch) -> (loss, logs, result)`` with ``batch`` a dict holding
    ``moving``, ``fixed`` (``N,C,H,W``) and optionally ``frame`` and ``sequence`` (else
    ``pair``, the image pair a FIRE patch comes from, serves as the sequence id); ``result`` is
    the model's :class:`~regkit.RegResult` (the Trainer's validation reuses it). The terms run
    in float32.
    """

    def __init__(self):
        super().__init__()
        self.weighting = UncertaintyWeighting(2)

    def forward(self, model: GPERegNet, batch: dict):
        moving, fixed = batch["moving"], batch["fixed"]
        parts = model.parts(moving, fixed, batch.get("frame"), batch.get("sequence", batch.get("pair")))
        with torch.autocast(device_type=moving.device.type, enabled=False):
            rec = F.l1_loss(parts["output"].float(), fixed.float())
            fact = normalised_scene_distance(parts["scene"], model.scene(fixed))
            loss = self.weighting(torch.stack((rec, fact)))
        logs = {
            "loss": float(loss.detach()),
            "rec": float(rec.detach()),
            "fact": float(fact.detach()),
            "lambda": float(self.weighting.relative_weights()[1]),
        }
        return loss, logs, RegResult(warped=parts["output"], disp=None)


# ----------------------------------------------------------------------------------------------
# The registered method
# ----------------------------------------------------------------------------------------------


def run_deformation_free(model, cls, moving: Tensor, fixed: Tensor, frame=None, sequence=None) -> RegResult:
    """Run a trained deformation-free model (eval mode, no gradients); ``disp`` is ``None``.

    ``model`` is a trained ``cls`` or the path of its Trainer checkpoint
    (:func:`regkit.models.blocks.as_model`). The model's train/eval mode is restored afterwards.
    """
    check_pair("moving", moving, "fixed", fixed)
    model = as_model(model, cls, moving.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            kwargs = {k: v for k, v in (("frame", frame), ("sequence", sequence)) if v is not None}
            out = model(moving, fixed, **kwargs)
    finally:
        model.train(was_training)
    return RegResult(warped=out.warped.float(), disp=None, extras={"deformation_free": True})


@method(
    "gpereg",
    kind="learned",
    summary="GPEReg-Net: scene of the moving image decoded with the fixed image's 32-number "
    "appearance code (AdaIN) plus position-encoded cross-frame attention; no displacement.",
)
def _gpereg(moving: Tensor, fixed: Tensor, model: GPERegNet | None = None, frame=None, sequence=None) -> RegResult:
    """``frame``: each pair's index in its sequence; ``sequence``: which sequence (e.g. the FIRE pair)."""
    return run_deformation_free(model, GPERegNet, moving, fixed, frame, sequence)
