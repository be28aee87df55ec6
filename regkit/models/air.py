r"""Attention for image registration: AiR and the multi-scale parallel MAPT-AiR (Wang & Delingette).

Registration read as translation: the *fixed* image is the source sentence, the *moving* image the
target sentence, and each image patch is a word.

1. Both images are cut into ``p x p`` patches; each patch is flattened, linearly embedded into
   ``dim`` features and a learned position embedding is added (ViT style).
2. A Transformer **encoder** runs self-attention over the fixed image's patches (the "memory").
3. A Transformer **decoder** runs self-attention over the moving image's patches, then
   **cross-attention** from every moving patch (query) to the fixed patches of the memory (keys,
   values): which fixed patches does this moving patch look like?
4. A linear head turns each decoder token into one displacement vector: a coarse field of
   ``H/p x W/p`` vectors, in units of that coarse grid.
5. :func:`regkit.spatial.resize_disp` upsamples it to a dense ``N,2,H,W`` field in pixels (values
   rescaled: one coarse unit is ``(W-1)/(W/p-1)`` pixels, 2.07 px for ``p = 2`` at 32 px, 4.43
   px for ``p = 4``, 10.3 px for ``p = 8``), and :func:`regkit.spatial.warp` pulls the moving
   image onto the fixed grid.

MAPT-AiR runs several such Transformers in parallel, each on its own patch size, resamples their
fields to the image size and adds them with learned weights normalised by a softmax (positive,
summing to one).

Convention
----------
- ``forward(moving, fixed)``: both ``N,C,H,W`` in [0, 1]; ``H`` and ``W`` must equal the model's
  ``size`` and be divisible by each patch size with at least two patches per side.
- Returns a :class:`regkit.RegResult`: ``warped`` ``N,C,H,W``, ``disp`` ``N,2,H,W`` in pixels
  (channel 0 = x, 1 = y, pull warp on the fixed grid). ``extras["coarse"]`` holds the per-patch
  field(s) in coarse-grid units; with ``return_attention=True``, ``extras["attention"]`` holds
  the head-averaged attention weights (see :meth:`AiR.forward`).
- Tokens are numbered row by row: patch ``(i, j)`` of an ``h x w`` patch grid is token ``i*w + j``.
- The coarse vector of patch ``(i, j)`` is placed at pixel ``(j (W-1)/(w-1), i (H-1)/(h-1))``
  (``align_corners=True`` resampling), not at the patch centre; the difference is under half a
  patch and is learned away.

Settings from the paper: one encoder and one decoder block, 4 heads, projection dimension 16,
dropout 0.5 "of the encoder and decoder layers". The book's MNIST digits are 28 x 28,
zero-padded to 32 x 32 (:func:`regkit.data.mnist_pairs`), so AiR-single's patch size 2 gives a
16 x 16 token grid and MAPT-AiR's patch sizes (2, 4, 8) give 16 x 16, 8 x 8 and 4 x 4 grids.

Our choices (the paper leaves them open): pre-norm blocks with a ReLU feed-forward layer of width
``4 * dim``; separate embeddings for the fixed (encoder) and moving (decoder) sides; the dropout
acts inside the blocks (on the attention and feed-forward outputs and inside the feed-forward
layer), *not* on the patch embeddings (``embed_dropout=0``): with dropout 0.5 on the 16 embedding
features, half of every token's position code is erased at each step and the field stays one
constant shift for every pair (on digits moved by known motions, 600 steps at learning rate
2e-3 leave the end-point error at 0.99 of the identity's with it and bring it to 0.59 without);
a displacement head initialised with small weights (standard deviation :data:`HEAD_INIT_STD`,
zero bias), so training starts within a few hundredths of a pixel of the identity while every
parameter gets a gradient from the first step; MAPT weights initialised equal.

Example
-------
>>> import torch
>>> model = AiR(size=(32, 32), patch_size=2).eval()
>>> x = torch.rand(2, 1, 32, 32)
>>> res = model(x, x)
>>> tuple(res.disp.shape), tuple(res.extras["coarse"].shape)
((2, 2, 32, 32), (2, 2, 16, 16))
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .. import spatial
from .._checks import check_pair, check_positive, check_size
from ..registry import RegResult, method
from .blocks import as_model

__all__ = [
    "AiR", "MAPTAiR", "build", "patchify", "attention_image", "ATTENTION_AXES", "AIR_DEFAULTS", "MAPT_DEFAULTS",
    "HEAD_INIT_STD",
]

ATTENTION_AXES = ("patches", "batch")
"""``"patches"``: attention across the patches of one image (correct). ``"batch"``: the pitfall,
attention across the pairs of a batch at the same patch position (see :class:`AiR`)."""

AIR_DEFAULTS = dict(size=(32, 32), patch_size=2, dim=16, heads=4, depth=1, dropout=0.5)
"""Single-scale AiR as in the paper (patch size 2) on the book's 32 x 32 digits: a 16 x 16 token grid."""

MAPT_DEFAULTS = dict(size=(32, 32), patch_sizes=(2, 4, 8), dim=16, heads=4, depth=1, dropout=0.5)
"""MAPT-AiR on 32 x 32 digits: token grids of 16 x 16, 8 x 8 and 4 x 4 (our choice of patch sizes)."""

HEAD_INIT_STD = 1e-3
"""Standard deviation of the displacement head's initial weights (bias zero): the first fields are
within a few hundredths of a pixel of the identity, and every parameter gets a gradient at once
(a head of exact zeros passes no gradient to anything before it on the first step)."""


def patchify(image: Tensor, patch_size: int) -> Tensor:
    """Cut ``N,C,H,W`` into non-overlapping patches: ``N, (H/p)(W/p), C p p`` (row-major tokens).

    >>> patchify(torch.arange(16.).reshape(1, 1, 4, 4), 2)[0, 1].tolist()
    [2.0, 3.0, 6.0, 7.0]
    """
    n, c, h, w = image.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image size {(h, w)} must be divisible by patch_size={p}")
    x = image.reshape(n, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(n, (h // p) * (w // p), c * p * p)


def attention_image(weights: Tensor, query, patch_size: int, size) -> Tensor:
    """Where one query patch looks: its row of an attention matrix as an image ``N,1,H,W``.

    ``weights`` is ``N,L,L`` (e.g. ``extras["attention"]["cross"][0]``: moving queries over fixed
    keys); ``query`` is the query patch ``(row, col)`` on the patch grid or a token index. Each key
    patch is painted with its weight (nearest-neighbour upsampling), so the image sums to
    ``patch_size**2`` times the row's sum (1).

    >>> w = torch.softmax(torch.randn(1, 16, 16), -1)
    >>> img = attention_image(w, (1, 2), 4, (16, 16))
    >>> tuple(img.shape), round(float(img.sum()) / 16, 4)
    ((1, 1, 16, 16), 1.0)
    """
    h, w = check_size("size", size)
    grid = (h // patch_size, w // patch_size)
    if weights.ndim != 3 or weights.shape[-1] != grid[0] * grid[1]:
        raise ValueError(f"weights must be N,L,{grid[0] * grid[1]} for size {(h, w)} and patch_size {patch_size}, "
                         f"got {tuple(weights.shape)}")
    token = query[0] * grid[1] + query[1] if isinstance(query, (tuple, list)) else int(query)
    if not 0 <= token < weights.shape[1]:
        raise ValueError(f"query must name one of the {weights.shape[1]} query patches, got {query!r}")
    row = weights[:, token].reshape(-1, 1, *grid).float()
    return spatial.resize_image(row, (h, w), mode="nearest")


class _Attention(nn.Module):
    """Multi-head attention on ``N,L,D`` tokens; ``axis="batch"`` reproduces the wrong-axis bug.

    The bug is the classic one: ``nn.MultiheadAttention`` built without ``batch_first=True`` reads
    an ``N,L,D`` tensor as ``L,N,D``, so it attends across the N pairs of the batch at each patch
    position instead of across the L patches of one image. Shapes still match and it trains.
    """

    def __init__(self, dim: int, heads: int, axis: str):
        super().__init__()
        self.axis = axis
        # Dropout acts on the block outputs, not on the L x L attention weights (our choice: on a
        # CPU, sampling a dropout mask for the weights costs more than the attention itself).
        self.mha = nn.MultiheadAttention(dim, heads, batch_first=(axis == "patches"))

    def forward(self, query: Tensor, memory: Tensor, need_weights: bool) -> tuple[Tensor, Tensor | None]:
        out, weights = self.mha(query, memory, memory, need_weights=need_weights, average_attn_weights=True)
        return out, weights


class _FeedForward(nn.Sequential):
    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, dim))


class _EncoderBlock(nn.Module):
    """Pre-norm block: ``x + SelfAttn(LN x)``, then ``x + FFN(LN x)``."""

    def __init__(self, dim, heads, hidden, dropout, axis):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads, axis)
        self.ffn = _FeedForward(dim, hidden, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, need_weights: bool):
        h = self.norm1(x)
        a, w = self.attn(h, h, need_weights)
        x = x + self.drop(a)
        return x + self.drop(self.ffn(self.norm2(x))), w


class _DecoderBlock(nn.Module):
    """Pre-norm block: self-attention over the moving tokens, cross-attention to the memory, FFN."""

    def __init__(self, dim, heads, hidden, dropout, axis):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.self_attn = _Attention(dim, heads, axis)
        self.cross_attn = _Attention(dim, heads, axis)
        self.ffn = _FeedForward(dim, hidden, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, memory: Tensor, need_weights: bool):
        h = self.norm1(x)
        a, w_self = self.self_attn(h, h, need_weights)
        x = x + self.drop(a)
        a, w_cross = self.cross_attn(self.norm2(x), memory, need_weights)
        x = x + self.drop(a)
        return x + self.drop(self.ffn(self.norm3(x))), w_self, w_cross


def _check_dropout(name, value):
    check_positive(name, value, allow_zero=True)
    if value >= 1:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def _check_model_args(size, patch_size, dim, heads, depth, dropout, attention_axis):
    h, w = check_size("size", size)
    check_positive("patch_size", patch_size, integer=True)
    if h % patch_size or w % patch_size:
        raise ValueError(f"size {(h, w)} must be divisible by patch_size={patch_size}")
    if h // patch_size < 2 or w // patch_size < 2:
        raise ValueError(f"patch_size={patch_size} must leave at least 2 x 2 patches of size {(h, w)}")
    check_positive("dim", dim, integer=True)
    check_positive("heads", heads, integer=True)
    check_positive("depth", depth, integer=True)
    if dim % heads:
        raise ValueError(f"dim={dim} must be divisible by heads={heads}")
    _check_dropout("dropout", dropout)
    if attention_axis not in ATTENTION_AXES:
        raise ValueError(f"attention_axis must be one of {ATTENTION_AXES}, got {attention_axis!r}")
    return h, w


class AiR(nn.Module):
    """Single-scale AiR: one encoder-decoder Transformer on ``patch_size x patch_size`` patches.

    Parameters
    ----------
    size : (H, W)
        Input size; the learned position embeddings are made for it.
    patch_size : int
        Side ``p`` of the square patches (the paper's single-scale model uses 2).
    channels, dim, heads, depth, dropout
        Image channels, projection dimension (16), attention heads (4), encoder and decoder
        blocks each (1) and the dropout ratio inside the blocks (0.5); paper values as defaults.
    mlp_ratio : int
        Width of the feed-forward layer as a multiple of ``dim`` (our choice: 4).
    embed_dropout : float
        Dropout on the patch embeddings plus position embeddings (ViT's ``emb_dropout``; our
        choice: 0, see the module docstring for why not 0.5).
    attention_axis : {"patches", "batch"}
        ``"batch"`` builds the *pitfall*: attention over the wrong axis (the pairs of a batch
        instead of the patches of an image). Only for the chapter and the tests that catch it.
    """

    def __init__(
        self,
        size=(32, 32),
        patch_size: int = 2,
        channels: int = 1,
        dim: int = 16,
        heads: int = 4,
        depth: int = 1,
        dropout: float = 0.5,
        mlp_ratio: int = 4,
        attention_axis: str = "patches",
        embed_dropout: float = 0.0,
    ):
        super().__init__()
        h, w = _check_model_args(size, patch_size, dim, heads, depth, dropout, attention_axis)
        _check_dropout("embed_dropout", embed_dropout)
        check_positive("channels", channels, integer=True)
        check_positive("mlp_ratio", mlp_ratio, integer=True)
        self.size, self.patch_size, self.channels = (h, w), patch_size, channels
        self.grid = (h // patch_size, w // patch_size)
        self.attention_axis = attention_axis
        self.config = dict(size=[h, w], patch_size=patch_size, channels=channels, dim=dim, heads=heads, depth=depth,
                           dropout=dropout, mlp_ratio=mlp_ratio, attention_axis=attention_axis,
                           embed_dropout=embed_dropout)
        tokens, patch_dim, hidden = self.grid[0] * self.grid[1], channels * patch_size**2, mlp_ratio * dim
        self.embed_fixed = nn.Linear(patch_dim, dim)
        self.embed_moving = nn.Linear(patch_dim, dim)
        self.pos_fixed = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.pos_moving = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.drop = nn.Dropout(embed_dropout)
        self.encoder = nn.ModuleList(_EncoderBlock(dim, heads, hidden, dropout, attention_axis) for _ in range(depth))
        self.decoder = nn.ModuleList(_DecoderBlock(dim, heads, hidden, dropout, attention_axis) for _ in range(depth))
        self.norm_memory, self.norm_out = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 2)
        nn.init.normal_(self.head.weight, std=HEAD_INIT_STD)
        nn.init.zeros_(self.head.bias)

    def _check_inputs(self, moving: Tensor, fixed: Tensor) -> None:
        check_pair("moving", moving, "fixed", fixed)
        if tuple(moving.shape[1:]) != (self.channels, *self.size):
            raise ValueError(
                f"moving and fixed must have shape (N, {self.channels}, {self.size[0]}, {self.size[1]}) "
                f"for this model, got {tuple(moving.shape)}"
            )

    def coarse_field(self, moving: Tensor, fixed: Tensor, return_attention: bool = False):
        """Per-patch field ``N,2,H/p,W/p`` (coarse-grid units) and the attention weights (or ``{}``).

        Attention weights are averaged over heads: ``"encoder"`` ``N,L,L`` (fixed to fixed),
        ``"decoder"`` ``N,L,L`` (moving to moving) and ``"cross"`` ``N,L,L`` where row ``i`` is
        how moving patch ``i`` spreads its attention over the fixed patches; one entry per block.
        With ``attention_axis="batch"`` they are ``L,N,N`` (pairs attending to pairs).
        """
        x_f = self.drop(self.embed_fixed(patchify(fixed, self.patch_size)) + self.pos_fixed)
        x_m = self.drop(self.embed_moving(patchify(moving, self.patch_size)) + self.pos_moving)
        attn = {"encoder": [], "decoder": [], "cross": []}
        for block in self.encoder:
            x_f, w = block(x_f, return_attention)
            attn["encoder"].append(w)
        memory = self.norm_memory(x_f)
        for block in self.decoder:
            x_m, w_self, w_cross = block(x_m, memory, return_attention)
            attn["decoder"].append(w_self)
            attn["cross"].append(w_cross)
        vec = self.head(self.norm_out(x_m))  # N, L, 2
        n = moving.shape[0]
        coarse = vec.transpose(1, 2).reshape(n, 2, *self.grid)
        return coarse, (attn if return_attention else {})

    def forward(self, moving: Tensor, fixed: Tensor, return_attention: bool = False) -> RegResult:
        """Register ``moving`` to ``fixed``; see the module's Convention."""
        self._check_inputs(moving, fixed)
        coarse, attn = self.coarse_field(moving, fixed, return_attention)
        disp = spatial.resize_disp(coarse, self.size)
        extras = {"coarse": coarse}
        if return_attention:
            extras["attention"] = attn
        return RegResult(warped=spatial.warp(moving, disp), disp=disp, extras=extras)


class MAPTAiR(nn.Module):
    """Multi-scale attention parallel Transformer: AiR branches on several patch sizes.

    The dense field is :math:`u = \\sum_k w_k\\, \\mathrm{resize}(c_k)` with
    :math:`w = \\mathrm{softmax}(\\ell)` over learned logits :math:`\\ell` (so :math:`w_k > 0`,
    :math:`\\sum w_k = 1`) and :math:`c_k` the coarse field of branch ``k``.

    Parameters
    ----------
    size : (H, W)
    patch_sizes : sequence of int
        One branch per patch size (distinct; each divides ``H`` and ``W``).
    **kwargs
        Passed to every :class:`AiR` branch (``dim``, ``heads``, ``depth``, ``dropout``, ...).
    """

    def __init__(self, size=(32, 32), patch_sizes: Sequence[int] = (2, 4, 8), **kwargs):
        super().__init__()
        patch_sizes = tuple(patch_sizes)
        if len(patch_sizes) == 0 or len(set(patch_sizes)) != len(patch_sizes):
            raise ValueError(f"patch_sizes must be distinct and non-empty, got {patch_sizes}")
        self.patch_sizes = patch_sizes
        self.branches = nn.ModuleList(AiR(size=size, patch_size=p, **kwargs) for p in patch_sizes)
        self.size, self.channels = self.branches[0].size, self.branches[0].channels
        self.weight_logits = nn.Parameter(torch.zeros(len(patch_sizes)))
        self.config = {**self.branches[0].config, "patch_sizes": list(patch_sizes)}
        del self.config["patch_size"]

    @property
    def weights(self) -> Tensor:
        """The normalised branch weights (softmax of the logits): positive, summing to one."""
        return torch.softmax(self.weight_logits, 0)

    def forward(self, moving: Tensor, fixed: Tensor, return_attention: bool = False) -> RegResult:
        """Register ``moving`` to ``fixed``; ``extras`` holds per-branch lists ``coarse``/``attention``
        (in ``patch_sizes`` order), the ``weights`` and each branch's dense field ``branch_disp``."""
        self.branches[0]._check_inputs(moving, fixed)
        weights = self.weights
        coarse, attention, dense = [], [], []
        for branch in self.branches:
            c, a = branch.coarse_field(moving, fixed, return_attention)
            coarse.append(c)
            attention.append(a)
            dense.append(spatial.resize_disp(c, self.size))
        disp = sum(wk * uk for wk, uk in zip(weights, dense))
        extras = {"coarse": coarse, "weights": weights.detach(), "branch_disp": [d.detach() for d in dense]}
        if return_attention:
            extras["attention"] = attention
        return RegResult(warped=spatial.warp(moving, disp), disp=disp, extras=extras)


def build(name: str, **overrides) -> nn.Module:
    """A fresh model: ``build("air")`` or ``build("mapt_air")`` with the defaults, overridable.

    >>> sum(p.numel() for p in build("air").parameters()) > 0
    True
    """
    if name == "air":
        return AiR(**{**AIR_DEFAULTS, **overrides})
    if name == "mapt_air":
        return MAPTAiR(**{**MAPT_DEFAULTS, **overrides})
    raise ValueError(f"name must be 'air' or 'mapt_air', got {name!r}")


def _run(cls, moving: Tensor, fixed: Tensor, model, **kwargs) -> RegResult:
    """Run a trained model (a module, or a Trainer checkpoint path) in eval mode, then restore its mode."""
    net = as_model(model, cls, moving.device)
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            return net(moving, fixed, **kwargs)
    finally:
        net.train(was_training)


@method("air", kind="learned", summary="AiR: encoder-decoder Transformer over image patches (Wang & Delingette).")
def _air(moving: Tensor, fixed: Tensor, model=None, **kwargs) -> RegResult:
    return _run(AiR, moving, fixed, model, **kwargs)


@method("mapt_air", kind="learned", summary="MAPT-AiR: parallel AiR Transformers on several patch sizes, weighted sum.")
def _mapt_air(moving: Tensor, fixed: Tensor, model=None, **kwargs) -> RegResult:
    return _run(MAPTAiR, moving, fixed, model, **kwargs)
