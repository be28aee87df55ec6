r"""GPE: position-encoded cross-frame attention over a sliding window of preceding frames.

GPEReg-Net's temporal module. Each frame's scene map is pooled to a token, given a learned plus
a sinusoidal position embedding of its frame index, and attends to the tokens of the preceding
``window`` frames of the *same sequence* (in the batch and, in eval mode, in a running
:class:`FrameCache` of earlier calls); the attended context is fused back into the scene map
with a small scale ``alpha``.

Convention
----------
Scene maps ``N,C,H,W``; ``frames`` a long tensor ``N`` of non-negative indices within each
sequence; ``sequences`` a long tensor ``N`` of sequence ids (frames of different sequences never
attend to each other), or ``None`` for one sequence. :func:`frame_indices` and
:func:`sequence_ids` turn user input (ints, lists of names) into these.

Example
-------
>>> import torch
>>> gpe = GPE(channels=16, window=2, heads=2)
>>> out = gpe(torch.rand(3, 16, 8, 8), torch.tensor([0, 1, 2]))
>>> out.shape
torch.Size([3, 16, 8, 8])
"""

from __future__ import annotations

import math
import zlib

import torch
import torch.nn as nn
from torch import Tensor

from .._checks import check_positive

__all__ = ["sinusoidal_encoding", "FrameCache", "GPE", "frame_indices", "sequence_ids"]


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
    pe = torch.zeros(frames.shape[0], dim, device=frames.device, dtype=torch.float32)
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
        drop = torch.zeros(len(self), dtype=torch.bool, device=self.frames.device)
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




def frame_indices(frame, n: int, device) -> Tensor:
    """Validate ``frame`` (None, int or long tensor ``N``) -> long tensor ``N`` on ``device``."""
    if frame is None:
        return torch.zeros(n, dtype=torch.long, device=device)
    if isinstance(frame, bool):
        raise TypeError(f"frame must be an int or an integer tensor of shape (N,), got {frame!r}")
    if isinstance(frame, int):
        frame = torch.full((n,), frame, dtype=torch.long, device="cpu")   # checked here, then moved
    if not isinstance(frame, Tensor) or frame.is_floating_point() or frame.dtype == torch.bool:
        raise TypeError(f"frame must be an int or an integer tensor of shape (N,), got {frame!r}")
    if frame.shape != (n,):
        raise ValueError(f"frame must have shape ({n},), one index per pair, got {tuple(frame.shape)}")
    if bool((frame < 0).any()):
        raise ValueError(f"frame indices must be non-negative, got {frame.tolist()}")
    return frame.to(device=device, dtype=torch.long)


def sequence_ids(sequence, n: int, device) -> Tensor | None:
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
