"""Mutation testing of the modules the book's correctness rests on, with mutmut, one module at a time.

    .venv/bin/python scripts/mutation.py                      # every module below (hours on 2 cores)
    .venv/bin/python scripts/mutation.py regkit/losses.py     # some modules; the others keep their record
    .venv/bin/python scripts/mutation.py --list               # the modules and the tests run for each

Each module is mutated in a scratch copy of the repository (``--scratch``, by default a folder
under the system's temporary directory), never in this working tree: the copy holds the files of
``HEAD`` (or, with ``--working-tree``, the files as they are now) and mutmut writes its mutants
there. Against each mutant run only the tests of the module's list (:data:`MODULES`) that call the
mutated function (mutmut finds them in a first, instrumented run of the list). Mutants run one at a
time, on one thread, at low priority: the machine is shared.

mutmut leaves decorated functions alone. Here a decorated function (``@torch.no_grad()``,
``@lru_cache``, ``@method(...)``, ``@property``, ...) is mutated too: in the scratch copy its
decorators are taken off and applied again right after it (``f = torch.no_grad()(f)``, on the
blank line that follows the function, so line numbers do not move), which is the same code. Every
mutant runs in a fresh process forked from one that only collected the tests (mutmut's
``forkserver``), so caches such as ``lru_cache`` never carry a value from another run.

The record, ``results/mutation.json``, holds per module and overall the counts, the score
``(killed + timed out) / (mutants - equivalent)``, the tool and version, the commit, the date and
the wall time; every mutant that was not killed with its file, line and diff; and the mutants
reviewed as equivalent (:data:`EQUIVALENT`) with the reason. ``--recheck`` reruns only the mutants
the previous run in the same scratch copy did not kill (after tests were added), with the tests as
they are now.

Convention
----------
Paths are relative to the repository root; a module is named by its path
(``regkit/classical/syn.py``). Not run by CI: it takes hours.
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT_VERSION = "3.8.1"

# The modules and the tests run against their mutants: the module's own tests, its value tests,
# and the tests of what is built on it where those pin its behaviour. ``tests/test_bad_inputs.py``
# is in the lists of the modules whose register/load boundary it checks; the others have their
# exact messages in their own value tests (its slow cases would otherwise run against every
# surviving mutant of the warp).
_BAD = "tests/test_bad_inputs.py"
_CLASSICAL = ["tests/test_classical_values.py", _BAD]
_MODELS = ["tests/test_models_values.py", _BAD]
MODULES: dict[str, list[str]] = {
    "regkit/spatial.py": ["tests/test_spatial.py", "tests/test_spatial_values.py", "tests/test_core_errors.py"],
    "regkit/filters.py": ["tests/test_filters.py", "tests/test_filters_values.py"],
    "regkit/metrics.py": ["tests/test_metrics.py", "tests/test_metrics_values.py", "tests/test_core_errors.py"],
    "regkit/losses.py": ["tests/test_losses.py", "tests/test_losses_values.py", "tests/test_core_errors.py"],
    "regkit/classical/_common.py": ["tests/test_classical_common.py", "tests/test_classical_values.py"],
    "regkit/classical/demons.py": ["tests/test_classical_demons.py", *_CLASSICAL],
    "regkit/classical/optical_flow.py": ["tests/test_classical_optical_flow.py", *_CLASSICAL],
    "regkit/classical/syn.py": ["tests/test_classical_syn.py", *_CLASSICAL],
    "regkit/classical/sift_ransac.py": ["tests/test_classical_sift_ransac.py", *_CLASSICAL],
    "regkit/models/blocks.py": ["tests/test_models_deformable.py", "tests/test_models_gpereg.py",
                                "tests/test_models_sasnet.py", *_MODELS],
    "regkit/models/dirnet.py": ["tests/test_models_deformable.py", *_MODELS],
    "regkit/models/voxelmorph.py": ["tests/test_models_deformable.py", *_MODELS],
    "regkit/models/transmorph.py": ["tests/test_models_deformable.py", *_MODELS],
    "regkit/models/factorised.py": ["tests/test_models_gpereg.py", *_MODELS],
    "regkit/models/gpe.py": ["tests/test_models_gpereg.py", *_MODELS],
    "regkit/models/gpereg.py": ["tests/test_models_gpereg.py", *_MODELS],
    "regkit/models/sasnet.py": ["tests/test_models_sasnet.py", *_MODELS],
    "regkit/checkpoint.py": ["tests/test_checkpoint.py", "tests/test_checkpoint_values.py", _BAD],
    "regkit/files.py": ["tests/test_files.py", "tests/test_checkpoint.py", "tests/test_data_download.py", _BAD],
    "regkit/data/download.py": ["tests/test_data_download.py", "tests/test_download_values.py", _BAD],
    "regkit/evaluation.py": ["tests/test_evaluation.py", "tests/test_evaluation_values.py"],
    # AiR: its own tests, and the two fast learning checks (a gradient for every parameter; the
    # field follows the fixed patches), not the few-hundred-step trainings of the same file
    "regkit/models/air.py": ["tests/test_models_air.py",
                             "tests/test_learning.py::test_every_air_parameter_gets_a_gradient",
                             "tests/test_learning.py::test_the_field_depends_on_where_the_fixed_patches_are", _BAD],
}

# Mutants reviewed as equivalent: no test can tell them from the original because the program
# computes the same thing. Matched by module, function and the changed line before and after
# (stripped), so that the entries survive edits elsewhere in the module.
EQUIVALENT: list[dict[str, str]] = []

# Mutants that differ from the original only on a device other than the CPU (a kernel or a
# constant made on the default device instead of the inputs'): they stay in the score as not
# killed, since the CPU-only suite cannot see them; the GPU tests can.
DEVICE_ONLY: list[dict[str, str]] = []


def _entries(table: list, module: str, function: str, old: str, news, reason: str) -> None:
    for new in ([news] if isinstance(news, str) else news):
        table.append({"module": module, "function": function, "old": old, "new": new, "reason": reason})


def _load_reviews() -> None:
    """The reviewed equivalent and device-only mutants, module by module."""
    eq, dev = (lambda *a: _entries(EQUIVALENT, *a)), (lambda *a: _entries(DEVICE_ONLY, *a))
    # --- regkit/filters.py
    m = "regkit/filters.py"
    eq(m, "_blur_replicate", "r = min(r, h - 1, w - 1)", "r = min(h - 1, w - 1)",
       "the branch runs only when r >= h or r >= w, so r > min(h, w) - 1 and min(r, h-1, w-1) = min(h-1, w-1)")
    eq(m, "gaussian_filter", 'k = _taps(float(sigma), float(truncate), "round")',
       ['k = _taps(float(sigma), float(truncate), None)', 'k = _taps(float(sigma), float(truncate), "XXroundXX")',
        'k = _taps(float(sigma), float(truncate), "ROUND")'],
       "_taps takes the round rule for every radius_rule other than 'ceil'")
    eq(m, "gaussian_filter", "x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, r), groups=c)",
       "x = F.conv2d(x, k.view(1, 1, -1).expand(c, 1, 1, -1), padding=(0, r), groups=c)",
       "expand adds the missing leading dimension: a (1, 1, K) view expands to the same (c, 1, 1, K) kernel")
    eq(m, "gaussian_filter", "return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(r, 0), groups=c)",
       "return F.conv2d(x, k.view(1, -1, 1).expand(c, 1, -1, 1), padding=(r, 0), groups=c)",
       "expand adds the missing leading dimension: a (1, K, 1) view expands to the same (c, 1, K, 1) kernel")
    eq(m, "image_gradient", "if min(x.shape[-2:]) < 2:", "if min(x.shape[+2:]) < 2:",
       "x is checked to be 4-D just above, so shape[2:] is shape[-2:]")
    eq(m, "image_gradient", 'raise ValueError(f"x must be at least 2 x 2 pixels for a gradient, got {tuple(x.shape[-2:])}")',
       'raise ValueError(f"x must be at least 2 x 2 pixels for a gradient, got {tuple(x.shape[+2:])}")',
       "x is checked to be 4-D just above, so shape[2:] is shape[-2:]")
    dev(m, "gaussian_filter", "k = k.to(device=x.device, dtype=x.dtype)",
        ["k = k.to(device=None, dtype=x.dtype)", "k = k.to(dtype=x.dtype)"],
        "the taps are made on the CPU: without device= they stay there, which only a GPU input notices")

    # --- regkit/metrics.py
    m = "regkit/metrics.py"
    for fn, name in (("_as_binary", "name"), ("dice", '"a"'), ("dice", '"b"')):
        x = "x" if fn == "_as_binary" else name.strip('"')
        old = f"check_tensor({name}, {x}, ndim=4, floating=False)"
        eq(m, fn, old, [f"check_tensor({name}, {x}, ndim=None, floating=False)", f"check_tensor({name}, {x}, floating=False)"],
           "dice refuses inputs that are not 4-D before this check, so ndim=4 is never what fails")
        eq(m, fn, old, f"check_tensor({name}, {x}, ndim=4, floating=None)",
           "floating=None is falsy like False: check_tensor tests `if floating and ...`")
    eq(m, "dice", "scores.append(torch.where(total > 0, 2 * inter / total.clamp_min(1), torch.ones_like(total)))",
       "scores.append(torch.where(total > 0, 2 * inter / total.clamp_min(2), torch.ones_like(total)))",
       "the clamp only acts for total < 2, where the overlap is 0 (one pixel in all cannot be in both sets), so the "
       "quotient is 0 either way; total = 0 takes the other branch")
    eq(m, "smooth_dice", "a, b = gaussian_filter(a, sigma, 3.5), gaussian_filter(b, sigma, 3.5)",
       ["a, b = gaussian_filter(a, sigma, ), gaussian_filter(b, sigma, 3.5)",
        "a, b = gaussian_filter(a, sigma, 3.5), gaussian_filter(b, sigma, )"],
       "3.5 is gaussian_filter's default truncate")
    eq(m, "ssim", "if min(a.shape[-2:]) <= 2 * r:", "if min(a.shape[+2:]) <= 2 * r:",
       "a is checked to be 4-D (check_pair), so shape[2:] is shape[-2:]")
    eq(m, "ssim", 'raise ValueError(f"a and b must be larger than the {2 * r + 1}-pixel SSIM window, got {tuple(a.shape[-2:])}")',
       'raise ValueError(f"a and b must be larger than the {2 * r + 1}-pixel SSIM window, got {tuple(a.shape[+2:])}")',
       "a is checked to be 4-D (check_pair), so shape[2:] is shape[-2:]")
    eq(m, "ssim", 'stats = gaussian_filter(torch.cat((a, b, a * a, b * b, a * b), 1), sigma, 3.5, padding="valid")',
       'stats = gaussian_filter(torch.cat((a, b, a * a, b * b, a * b), 1), sigma, padding="valid")',
       "3.5 is gaussian_filter's default truncate")
    dev(m, "tre", "valid = valid.to(dist.device, torch.bool)",
        ["valid = valid.to(None, torch.bool)", "valid = valid.to(torch.bool)"],
        "moves the mask to the distances' device: only a mask on another device than the landmarks notices")

    # --- regkit/classical/_common.py
    m = "regkit/classical/_common.py"
    eq(m, "auto_levels", "side = (side + 1) // 2", "side = (side + 1) / 2",
       "real-valued halving stays less than 1 above the integer one (the gap halves and adds at most 1/2), and "
       "the threshold 2 top is an integer, so the loop stops after the same number of levels")
    eq(m, "check_levels_iterations", 'check_positive("iterations", iterations, integer=True)',
       ['check_positive("iterations", iterations, integer=None)', 'check_positive("iterations", iterations, )',
        'check_positive("iterations", iterations, integer=False)'],
       "this branch is only taken for a Python int (not a bool), so the integer check cannot fail")
    eq(m, "check_min_size", "h, w = x.shape[-2:]", "h, w = x.shape[+2:]",
       "the methods call it on checked 4-D batches, where shape[2:] is shape[-2:]")
    old = "return [x if tuple(s) == tuple(x.shape[-2:]) else spatial.resize_image(x, s, antialias=True, check=False)"
    eq(m, "image_pyramid", old, old.replace("x.shape[-2:]", "x.shape[+2:]"),
       "images are 4-D batches, where shape[2:] is shape[-2:]")
    eq(m, "image_pyramid", old, [old.replace("check=False", "check=None"), old.replace(", check=False", ", "),
                                 old.replace("check=False", "check=True")],
       "check only validates inputs (the methods have checked them with check_pair); the resized values are the same")

    # --- regkit/files.py
    eq("regkit/files.py", "sha256sum", 'for chunk in iter(lambda: f.read(_CHUNK), b""):',
       'for chunk in iter(lambda: f.read(None), b""):',
       "read(None) reads the whole file in one chunk: the same bytes reach the hash (only memory differs)")

    # --- regkit/data/download.py
    m = "regkit/data/download.py"
    DEFAULT = "the argument passed is the callee's default"
    eq(m, "_extract_7z", 'with py7zr.SevenZipFile(archive, "r") as z:', "with py7zr.SevenZipFile(archive, ) as z:",
       DEFAULT + " (py7zr.SevenZipFile's mode='r')")
    old = 'with atomic_write(dest, "wb", suffix=".part") as out, _open_url(url, timeout) as src:'
    eq(m, "download", old, [old.replace('"wb", ', ""), old.replace('suffix=".part"', "")],
       DEFAULT + " (atomic_write's mode 'wb' and suffix '.part')")
    eq(m, "extract", 'with tarfile.open(archive, "r:*") as tf:', "with tarfile.open(archive, ) as tf:",
       DEFAULT + " (tarfile.open's 'r' is 'r:*')")
    eq(m, "extract", "_check_targets(_top_names(names, name), dest, archive, overwrite)",
       "_check_targets(_top_names(names, None), dest, archive, overwrite)",
       "every name reaching check() has passed safe_member_path in the member checks, so _top_names cannot raise "
       "and its archive name is never shown")
    ROOTS = ("the members left out are only root folder entries ('.', './'), which extract to the temporary folder "
             "itself: nothing else is written, and that folder is deleted afterwards")
    eq(m, "extract", "zf.extractall(tmp, members=members)", ["zf.extractall(tmp, members=None)", "zf.extractall(tmp, )"],
       ROOTS)
    old = 'tf.extractall(tmp, members=members, filter="data")'
    eq(m, "extract", old, [old.replace("members=members", "members=None"), old.replace("members=members, ", "")],
       ROOTS + " (the data filter drops a root entry's mode and owner)")
    old = 'if clean.startswith("/") or p.is_absolute() or (len(clean) > 1 and clean[1] == ":"):'
    eq(m, "safe_member_path", old, old.replace('startswith("/") or', 'startswith("/") and'),
       "a PurePosixPath is absolute exactly when its string starts with '/', so 'A or B' and 'A and B' agree")

    # --- regkit/checkpoint.py
    m = "regkit/checkpoint.py"
    eq(m, "set_rng_state", "np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))",
       "np.random.set_state((kind, keys.numpy().astype(None), pos, has_gauss, cached))",
       "astype(None) gives float64, which holds every 32-bit key exactly; NumPy converts the keys back to uint32")
    for line, old in ((100, 'state = torch.load(path, map_location="cpu", weights_only=True)'),
                      (114, "return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)"),
                      (118, "state = torch.load(path, map_location=map_location, weights_only=True)")):
        eq(m, "load_checkpoint", old, [old.replace("weights_only=True", "weights_only=None"),
                                       old.replace(", weights_only=True", ", ")],
           "torch.load defaults to weights_only=True since torch 2.6 (the pinned 2.14; Colab's 2.11); on an older "
           "torch this would load arbitrary pickles")
    eq(m, "load_checkpoint", "state = torch.load(path, map_location=map_location, weights_only=True)",
       "state = torch.load(path, map_location=map_location, weights_only=False)",
       "the same file was loaded with weights_only=True a few lines above: a file that needs more never gets here")
    eq(m, "load_checkpoint", 'if map_location != "cpu":', ['if map_location != "XXcpuXX":', 'if map_location != "CPU":'],
       "with map_location 'cpu' the file is loaded a second time onto the CPU: the same tensors")
    eq(m, "save_checkpoint", 'with atomic_write(path, "wb", suffix=".pt") as f:',
       ['with atomic_write(path, suffix=".pt") as f:'], "'wb' is atomic_write's default mode")
    eq(m, "save_checkpoint", 'with atomic_write(path, "wb", suffix=".pt") as f:',
       ['with atomic_write(path, "wb", suffix=None) as f:', 'with atomic_write(path, "wb", ) as f:',
        'with atomic_write(path, "wb", suffix="XX.ptXX") as f:', 'with atomic_write(path, "wb", suffix=".PT") as f:'],
       "the suffix only names the temporary file, which is renamed at the end or removed; stale temps are found by "
       "their prefix")
    dev(m, "load_checkpoint", 'state = torch.load(path, map_location="cpu", weights_only=True)',
        ['state = torch.load(path, map_location=None, weights_only=True)', 'state = torch.load(path, weights_only=True)'],
        "only a file saved from a GPU, loaded on a machine without one, notices (CPU-saved files load on the CPU anyway)")
    dev(m, "rng_state", "if torch.cuda.is_available() and torch.cuda.is_initialized():",
        "if torch.cuda.is_available() or torch.cuda.is_initialized():", "CUDA generators: only a machine with CUDA")
    dev(m, "rng_state", 'state["cuda"] = torch.cuda.get_rng_state_all()',
        ['state["cuda"] = None', 'state["XXcudaXX"] = torch.cuda.get_rng_state_all()',
         'state["CUDA"] = torch.cuda.get_rng_state_all()'], "CUDA generators: only a machine with CUDA")
    dev(m, "set_rng_state", 'if "cuda" in state and torch.cuda.is_available():',
        ['if "cuda" in state or torch.cuda.is_available():', 'if "XXcudaXX" in state and torch.cuda.is_available():',
         'if "CUDA" in state and torch.cuda.is_available():', 'if "cuda" not in state and torch.cuda.is_available():'],
        "CUDA generators: only a machine with CUDA")
    dev(m, "set_rng_state", 'torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])',
        ["torch.cuda.set_rng_state_all(None)", 'torch.cuda.set_rng_state_all([s.cpu() for s in state["XXcudaXX"]])',
         'torch.cuda.set_rng_state_all([s.cpu() for s in state["CUDA"]])'], "CUDA generators: only a machine with CUDA")

    # --- regkit/spatial.py: the warp's CPU chunking, exact constants, devices
    m = "regkit/spatial.py"
    WARP_CHUNKS = ("the pairs of a batch are warped independently: how many go to one grid_sample call changes "
                   "the cache use, not the values (tests/test_spatial_values.py::test_cpu_chunks_give_the_same_warp)")
    old = 'if disp.device.type == "cpu":'
    eq(m, "_sample_grid", old, [old.replace("==", "!="), old.replace('"cpu"', '"XXcpuXX"'),
                                old.replace('"cpu"', '"CPU"')], WARP_CHUNKS)
    old = "step = max(torch.get_num_threads(), _CPU_CHUNK_PIXELS // (h * w), 1)"
    eq(m, "_sample_grid", old, ["step = max(_CPU_CHUNK_PIXELS // (h * w), 1)", "step = max(torch.get_num_threads(), 1)",
                                "step = max(torch.get_num_threads(), _CPU_CHUNK_PIXELS // (h * w), )",
                                "step = max(torch.get_num_threads(), _CPU_CHUNK_PIXELS // (h * w), 2)"],
       WARP_CHUNKS + "; every variant keeps the step at least 1")
    eq(m, "_sample_grid", old, "step = max(torch.get_num_threads(), _CPU_CHUNK_PIXELS // (h / w), 1)",
       "a step of 2^17 // (h / w) >= 2^17 / 256 pairs: the batch is warped in one call, as it would be in chunks")
    eq(m, "_sample_grid", "if step >= n:", "if step > n:", "with step == n the chunked loop makes one chunk: the same call")
    old = "if torch.is_grad_enabled() and (image.requires_grad or disp.requires_grad):"
    eq(m, "_sample_grid", old, [old.replace("and (", "or ("), old.replace("requires_grad or", "requires_grad and")],
       "both paths give the same values and gradients (copy_ into the output is differentiable); the choice "
       "only avoids in-place writes when autograd records")
    eq(m, "_sample_grid", "for i in range(0, n, step):", "for i in range(0, n, ):",
       "chunks starting at every pair overlap, each writing the same values again: slower, equal")
    HALF = ("(size - 1) / 2 is a multiple of 0.5, exact in float32 for every size below 2^24, and the division "
            "promotes to the field's dtype")
    old = "return torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0], device=device, dtype=dtype).view(1, 2, 1, 1)"
    eq(m, "_half_size", old, [old.replace("dtype=dtype)", "dtype=None)"), old.replace(", dtype=dtype)", ", )")], HALF)
    eq(m, "_half_size", old, old.replace(".view(1, 2, 1, 1)", ".view(2, 1, 1)"),
       "a (2, 1, 1) tensor broadcasts against N,2,H,W exactly as (1, 2, 1, 1)")
    old = "c = torch.tensor([(w - 1) / 2.0, (h - 1) / 2.0], device=points.device, dtype=points.dtype)"
    eq(m, "_normalise", old, [old.replace("dtype=points.dtype)", "dtype=None)"), old.replace(", dtype=points.dtype)", ", )")],
       HALF)
    old = "c = _half_size(h, w, disp.device, disp.dtype)"
    eq(m, "_grid_of", old, old.replace("disp.dtype)", "None)"), HALF)
    old = "grid = torch.add(_identity_grid_cached(h, w, disp.device, disp.dtype), disp).div_(c).sub_(1.0)"
    eq(m, "_grid_of", old, old.replace("disp.device, disp.dtype)", "disp.device, None)"),
       "an integer identity grid plus a float field is the same float grid (integers are exact)")
    FOUR_D = "the tensor is checked to be 4-D above, so shape[2:] is shape[-2:]"
    TWO_CH = "the tensor is checked to be N,2,H,W above: the extra element is the channel count 2, so the minimum is the same"
    ONE_D = "the parameters are reshaped to 1-D above, so stacking on dimension 1 is stacking on dimension -1"
    for fn, old in (("_check_warp_args", "if min(disp.shape[-2:]) < 2:"), ("compose", "if min(u.shape[-2:]) < 2:"),
                    ("integrate_velocity", "if min(velocity.shape[-2:]) < 2:")):
        eq(m, fn, old, old.replace("[-2:]", "[+2:]"), FOUR_D)
        eq(m, fn, old, old.replace("[-2:]", "[-3:]"), TWO_CH)
    for fn, old in (
        ("_check_warp_args", 'raise ValueError(f"disp must be at least 2 x 2 pixels (align_corners=True), got '
                             '{tuple(disp.shape[-2:])}")'),
        ("compose", 'raise ValueError(f"u must be at least 2 x 2 pixels, got {tuple(u.shape[-2:])}")'),
        ("integrate_velocity", 'raise ValueError(f"velocity must be at least 2 x 2 pixels, got {tuple(velocity.shape[-2:])}")'),
        ("inside_mask", "h, w = disp.shape[-2:]"), ("sample_points", "h, w = field.shape[-2:]"),
        ("resize_disp", 'check_size("disp\'s size", disp.shape[-2:])'), ("resize_disp", "h0, w0 = disp.shape[-2:]"),
        ("bspline_upsample", "by = bspline_basis(h, control.shape[-2], control.device)"),
    ):
        eq(m, fn, old, old.replace("[-2:]", "[+2:]").replace("shape[-2]", "shape[+2]"), FOUR_D)
    old = "rot_m = torch.stack((torch.stack((cos, -sin), -1), torch.stack((sin, cos), -1)), -2)"
    eq(m, "affine_matrix", old, ["rot_m = torch.stack((torch.stack((cos, -sin), +1), torch.stack((sin, cos), -1)), -2)",
                                 "rot_m = torch.stack((torch.stack((cos, -sin), -1), torch.stack((sin, cos), +1)), -2)"], ONE_D)
    old = "(torch.stack((torch.ones_like(s), torch.tan(s)), -1), torch.stack((torch.zeros_like(s), torch.ones_like(s)), -1)),"
    eq(m, "affine_matrix", old, [
        "(torch.stack((torch.ones_like(s), torch.tan(s)), +1), torch.stack((torch.zeros_like(s), torch.ones_like(s)), -1)),",
        "(torch.stack((torch.ones_like(s), torch.tan(s)), -1), torch.stack((torch.zeros_like(s), torch.ones_like(s)), +1)),"],
        ONE_D)
    eq(m, "affine_matrix", "t = c + torch.stack((tx_, ty_), -1) - (lin @ c)", "t = c + torch.stack((tx_, ty_), +1) - (lin @ c)",
       ONE_D)
    old = "a < 1, (4 - 6 * a**2 + 3 * a**3) / 6, torch.where(a < 2, (2 - a) ** 3 / 6, torch.zeros_like(a))"
    eq(m, "_bspline3", old, old.replace("a < 1", "a <= 1"), "both pieces are exactly 1/6 at a = 1")
    eq(m, "_bspline3", old, old.replace("a < 2", "a <= 2"), "(2 - a)^3 / 6 is exactly 0 at a = 2, as the zero branch")
    for old in ("x = torch.arange(n_points, dtype=torch.float64)[:, None]",
                'x = torch.arange(n_points, dtype=torch.float64, device="cpu")[:, None]'):
        eq(m, "_basis_cached", old, [old.replace("dtype=torch.float64", "dtype=None"),
                                     old.replace("dtype=torch.float64, ", "").replace("dtype=torch.float64", "")],
           "an int64 arange minus the float64 knot positions promotes to the same float64 values (integers are exact)")
    eq(m, "bspline_basis", 'return _basis_cached(n_points, n_ctrl, dtype).to(device if device is not None else "cpu")',
       'return _basis_cached(n_points, n_ctrl, dtype).to(device if (device is not None) or True else "cpu")',
       "the cached basis is made on the CPU, so .to(None) and .to('cpu') both leave it there")
    eq(m, "bspline_upsample", 'return torch.einsum("hi,ncij,wj->nchw", by, control.float(), bx)',
       'return torch.einsum("HI,NCIJ,WJ->NCHW", by, control.float(), bx)', "only the subscript letters are renamed")
    old = "x = torch.cat((src.double(), torch.ones_like(src[..., :1], dtype=torch.float64)), -1)"
    eq(m, "fit_affine", old, [old.replace("dtype=torch.float64", "dtype=None"), old.replace(", dtype=torch.float64)", ", )")],
       "ones are exact in every dtype and torch.cat promotes them to the float64 of src.double()")
    eq(m, "resize_disp", "return (out * scale.view(1, 2, 1, 1)).to(disp.dtype)",
       "return (out * scale.view(2, 1, 1)).to(disp.dtype)", "a (2, 1, 1) tensor broadcasts against N,2,H,W as (1, 2, 1, 1)")
    eq(m, "resize_image", 'out = F.interpolate(x, size=(h, w), mode="nearest")', "out = F.interpolate(x, size=(h, w), )",
       "F.interpolate's default mode is 'nearest'")
    old = 'out = F.grid_sample(field.to(dtype), grid, mode="bilinear", padding_mode="border", align_corners=True)'
    eq(m, "sample_points", old, old.replace('mode="bilinear", ', ""), "F.grid_sample's default mode is 'bilinear'")
    eq(m, "warp_labels", 'check_tensor("labels", labels, ndim=4, floating=False)',
       'check_tensor("labels", labels, ndim=4, floating=None)', "floating=None is falsy like False: check_tensor tests "
       "`if floating and ...`")
    old = "return out.round().to(labels.dtype) if not labels.is_floating_point() else out.to(labels.dtype)"
    eq(m, "warp_labels", old, old.replace("if not labels.is_floating_point()", "if (not labels.is_floating_point()) and False"),
       "nearest sampling with zero padding copies label values, so integer labels come back integer-valued and "
       "round() changes nothing")
    ON_CPU = "the grid or basis made on the CPU instead of the input's device: only GPU inputs notice"
    for fn, old in (("affine_to_disp", "grid = identity_grid((h, w), theta.device, theta.dtype)  # 1,2,H,W"),
                    ("disp_to_affine", "grid = identity_grid((h, w), disp.device, disp.dtype).flatten(2).transpose(1, 2)  # 1,HW,2")):
        dev(m, fn, old, old.replace("(h, w), theta.device", "(h, w), None").replace("(h, w), disp.device", "(h, w), None"),
            ON_CPU)
    old = "pts = identity_grid((h, w), disp.device) + disp.float()"
    dev(m, "inside_mask", old, [old.replace("disp.device)", "None)"), old.replace("disp.device)", ")")], ON_CPU)
    for old in ("by = bspline_basis(h, control.shape[-2], control.device)",
                "bx = bspline_basis(w, control.shape[-1], control.device)"):
        dev(m, "bspline_upsample", old, [old.replace("control.device)", "None)"), old.replace("control.device)", ")")], ON_CPU)
    dev(m, "_check_warp_args",
        'raise ValueError(f"image and disp must be on the same device, got {image.device} and {disp.device}")',
        "raise ValueError(None)", "the message is reached only with inputs on two devices")

    # --- classical methods: the chunking of independent pairs, checks of checked inputs
    CHUNKS = ("the pairs of a batch are independent: how many are iterated together changes the cache use, "
              "not the fields")
    CHECKS = "check= only validates the inputs, which the method has checked once at its boundary"
    m = "regkit/classical/demons.py"
    old = 'step = n if disp.device.type != "cpu" else max(1, _CPU_CHUNK_PIXELS // (h * w))'
    eq(m, "_iterate", old, [old.replace('disp.device.type != "cpu"', '(disp.device.type != "cpu") and False'),
                            old.replace('disp.device.type != "cpu"', '(disp.device.type != "cpu") or True'),
                            old.replace("!=", "=="), old.replace('"cpu"', '"XXcpuXX"'), old.replace('"cpu"', '"CPU"'),
                            old.replace("max(1,", "max(2,")], CHUNKS)
    eq(m, "_iterate", "return chunks[0] if len(chunks) == 1 else torch.cat(chunks)",
       "return chunks[0] if (len(chunks) == 1) and False else torch.cat(chunks)", "torch.cat of one chunk is that chunk")
    eq(m, "_iterate", "u = demons_step(m, f, u, grad_fixed=g, **step_kw)",
       ["u = demons_step(m, f, u, grad_fixed=None, **step_kw)", "u = demons_step(m, f, u, **step_kw)"],
       "without grad_fixed the step computes image_gradient(fixed), which is exactly the g passed")
    old = "disp = demons_step(ms[lvl], fs[lvl], disp, grad_fixed=gf, **step_kw)"
    eq(m, "demons", old, [old.replace("grad_fixed=gf", "grad_fixed=None"), old.replace("grad_fixed=gf, ", "")],
       "without grad_fixed the step computes image_gradient(fixed), which is exactly the gf passed")
    old = "du = torch.where(denom > 1e-12, 2 * diff * g / denom.clamp_min(1e-12), torch.zeros_like(g))"
    eq(m, "demons_step", old, old.replace("denom > 1e-12", "denom >= 1e-12"),
       "the forms differ only where denom is exactly 1e-12 in float32; with the MATCHED cut diff is 0 (then both "
       "give 0) or at least 1e-5, and then denom >= diff^2 / max_step^2 > 1e-12 for every max_step under 10 px")
    for fn, old in (("demons_step", "g = (image_gradient(fixed) if grad_fixed is None else grad_fixed) + image_gradient(warped)"),
                    ("demons_step", "g = 2 * (image_gradient(fixed) if grad_fixed is None else grad_fixed)")):
        eq(m, fn, old, old.replace("if grad_fixed is None", "if (grad_fixed is None) or True"),
           "the gradient passed as grad_fixed is image_gradient(fixed) itself")
    old = "warped = spatial.warp(moving, disp, check=False)"
    eq(m, "demons_step", old, [old.replace("check=False", "check=None"), old.replace(", check=False", ", "),
                               old.replace("check=False", "check=True")], CHECKS)
    old = "disp = spatial.compose(disp, spatial.integrate_velocity(du, steps=4, check=False), check=False)"
    eq(m, "demons_step", old, [
        "disp = spatial.compose(disp, spatial.integrate_velocity(du, steps=4, check=False), check=None)",
        "disp = spatial.compose(disp, spatial.integrate_velocity(du, steps=4, check=False), )",
        "disp = spatial.compose(disp, spatial.integrate_velocity(du, steps=4, check=None), check=False)",
        "disp = spatial.compose(disp, spatial.integrate_velocity(du, steps=4, ), check=False)",
        "disp = spatial.compose(disp, spatial.integrate_velocity(du, steps=4, check=True), check=False)",
        "disp = spatial.compose(disp, spatial.integrate_velocity(du, steps=4, check=False), check=True)"], CHECKS)

    m = "regkit/classical/optical_flow.py"
    old = 'step = n if u.device.type != "cpu" else max(1, _CPU_CHUNK_PIXELS // (h * w))'
    eq(m, "_jacobi", old, [old.replace('u.device.type != "cpu"', '(u.device.type != "cpu") and False'),
                           old.replace('u.device.type != "cpu"', '(u.device.type != "cpu") or True'),
                           old.replace("!=", "=="), old.replace('"cpu"', '"XXcpuXX"'), old.replace('"cpu"', '"CPU"'),
                           old.replace("max(1,", "max(2,")], CHUNKS)
    eq(m, "_jacobi", "return chunks[0] if len(chunks) == 1 else torch.cat(chunks)",
       "return chunks[0] if (len(chunks) == 1) and False else torch.cat(chunks)", "torch.cat of one chunk is that chunk")
    for fn in ("horn_schunck",):
        old = "full = tuple(f.shape[-2:])"
        eq(m, fn, old, old.replace("[-2:]", "[+2:]"), "f is a 4-D batch, where shape[2:] is shape[-2:]")
    eq(m, "_median_of", "if len(values) == 3:", "if len(values) == 4:",
       "windows are odd: 3 values then take the general path, torch.stack(values).median(0), the same median "
       "(values compare equal; only the sign of a zero median can differ)")
    eq(m, "_median_of", "if len(values) == 5:", "if len(values) == 6:",
       "windows are odd: 5 values then take the general path, torch.stack(values).median(0), the same median "
       "(values compare equal; only the sign of a zero median can differ)")
    eq(m, "horn_schunck", 'check_min_size("horn_schunck", fixed, MIN_SIZE)', 'check_min_size("horn_schunck", fixed, )',
       "MIN_SIZE is the parameter's default")
    eq(m, "horn_schunck", "if lvl > 0:", "if lvl >= 0:",
       "at level 0 the field is the zero field of that level's size; resizing it to its own size gives zeros")
    for old in ("disp = spatial.resize_disp(disp, size, check=False)", "warped = spatial.warp(ms[lvl], disp, check=False)",
                "warped = spatial.warp(moving.float(), disp, check=False)"):
        eq(m, "horn_schunck", old, [old.replace("check=False", "check=None"), old.replace("check=False", ""),
                                    old.replace("check=False", "check=True")], CHECKS)
    old = "snapshots.append((done, disp.clone() if size == full else spatial.resize_disp(disp, full, check=False)))"
    eq(m, "horn_schunck", old, [old.replace("check=False", "check=None"), old.replace("check=False", ""),
                                old.replace("check=False", "check=True")], CHECKS)
    eq(m, "horn_schunck", old, old.replace("if size == full", "if (size == full) and False"),
       "resizing a full-size field to its own size (bilinear, align_corners=True, scale 1) is an exact copy")
    eq(m, "median_filter", 'p = F.pad(u.reshape(n * c, 1, h, w), (r, r, 0, 0), mode="replicate")[:, 0]',
       'p = F.pad(u.reshape(n * c, 1, h, w), (r, r, 0, 1), mode="replicate")[:, 0]',
       "the extra row copies the last row, which the column pass pads with anyway; only h + 2r rows are read")
    old = 'p = F.pad(u, (1, 1, 1, 1), mode="replicate")'
    eq(m, "neighbour_average", old, [old.replace("(1, 1, 1, 1)", "(1, 2, 1, 1)"), old.replace("(1, 1, 1, 1)", "(1, 1, 1, 2)")],
       "the extra column or row is never read by the slices that follow")
    eq(m, "neighbour_average", "rows = torch.add(p[..., :, 0:w], p[..., :, 2 : w + 2]).add_(p[..., :, 1 : w + 1], alpha=2)",
       "rows = torch.add(p[..., :, 0:w], p[..., :, 2 : w + 3]).add_(p[..., :, 1 : w + 1], alpha=2)",
       "p is w + 2 wide, so the slice ends at the same column")
    eq(m, "neighbour_average",
       "both = torch.add(rows[..., 0:h, :], rows[..., 2 : h + 2, :]).add_(rows[..., 1 : h + 1, :], alpha=2)",
       "both = torch.add(rows[..., 0:h, :], rows[..., 2 : h + 3, :]).add_(rows[..., 1 : h + 1, :], alpha=2)",
       "rows is h + 2 high, so the slice ends at the same row")
    AUTOCAST = ("no operation inside runs differently under autocast (no convolution or matrix product: shifts, "
                "sums, grid_sample in float32); the context only guards a caller's autocast region")
    for mod, fn, dev_expr in (("regkit/classical/optical_flow.py", "horn_schunck", "moving"),
                              ("regkit/classical/demons.py", "demons", "moving")):
        old = f"with torch.no_grad(), torch.autocast(device_type={dev_expr}.device.type, enabled=False):"
        eq(mod, fn, old, [old.replace("enabled=False", "enabled=True"), old.replace(", enabled=False", ", ")], AUTOCAST)
    for mod, fn, old in (("regkit/classical/demons.py", "demons",
                          "disp = torch.zeros(f.shape[0], 2, *sizes[0], device=f.device)"),):
        dev(mod, fn, old, [old.replace("device=f.device", "device=None"), old.replace(", device=f.device", ", ")],
            "the starting field is made on the default device: only GPU inputs notice")

    m = "regkit/classical/syn.py"
    eq(m, "_box_mean", "p = F.pad(x, (radius, radius, 0, 0))", "p = F.pad(x, (radius, radius, 0, 1))",
       "the extra bottom row is zero, and the column pass pads with zeros there anyway: the same sums")
    old = "halves, inverses = (spatial.resize_disp(f, (h, w)) if f.shape[-2:] != (h, w) else f for f in fields)"
    eq(m, "_syn", old, old.replace("f.shape[-2:] != (h, w)", "f.shape[-3:] != (h, w)"),
       "a 3-tuple never equals (h, w), so full-size fields are resized to their own size, which returns them unchanged")
    eq(m, "syn", 'metric: str = "cc",', 'metric: str = "CC",', "the metric is lower-cased before use")
    eq(m, "_pull", "return spatial.warp(x, u, check=False)",
       ["return spatial.warp(x, u, check=None)", "return spatial.warp(x, u, )", "return spatial.warp(x, u, check=True)"],
       CHECKS + " (every image and field reaching the inner warp is a finite 4-D tensor of matching size)")
    old = "halves, inverses = (spatial.resize_disp(f, (h, w)) if f.shape[-2:] != (h, w) else f for f in fields)"
    eq(m, "_syn", old, old.replace("if f.shape[-2:] != (h, w)", "if (f.shape[-2:] != (h, w)) or True"),
       "resizing a field to its own size returns it bit for bit")
    eq(m, "_syn", old, old.replace("f.shape[-2:]", "f.shape[+2:]"), "the fields are 4-D, so shape[2:] is shape[-2:]")
    eq(m, "_syn", "return RegResult(warped=warped, disp=disp, params=None, extras=extras)",
       "return RegResult(warped=warped, disp=disp, extras=extras)", "RegResult's params defaults to None")
    eq(m, "syn", 'check_min_size("syn", fixed, MIN_SIZE)', 'check_min_size("syn", fixed, )',
       "MIN_SIZE is the parameter's default")
    old = "tuple(fixed.shape[-2:]), iterations, shrink_factors, smoothing_sigmas, metric, radius, grad_step, flow_sigma,"
    eq(m, "syn", old, old.replace("[-2:]", "[+2:]"), "fixed is checked to be 4-D just above, so shape[2:] is shape[-2:]")
    eq(m, "update_halves", "if total_sigma > 0:", "if total_sigma >= 0:",
       "gaussian_blur with sigma 0 returns its input itself")
    old = 'step = n if halves.device.type != "cpu" else max(1, _CPU_CHUNK_PIXELS // (2 * h * w))'
    eq(m, "_iterate", old, old.replace('if halves.device.type != "cpu"', 'if (halves.device.type != "cpu") and False'),
       "chunking on a GPU too: the chunks give the same fields bit for bit (tested on the CPU), only slower")
    eq(m, "_iterate", "if step >= n:", "if step > n:",
       "one chunk of the whole batch runs the same steps on the same rows: the same fields bit for bit")
    BOX = "the box counts are made on the CPU; without the device they stay there, which only GPU inputs notice"
    dev(m, "_box_count", "return (inside(h)[:, None] * inside(w)[None, :]).to(device)",
        "return (inside(h)[:, None] * inside(w)[None, :]).to(None)", BOX)
    dev(m, "_box_mean", "return s / _box_count(h, w, radius, x.device)", "return s / _box_count(h, w, radius, None)", BOX)

    m = "regkit/classical/sift_ransac.py"
    eq(m, "detect", "pts = cv2.KeyPoint_convert(kps).reshape(-1, 2) if kps else np.zeros((0, 2), np.float32)",
       "pts = cv2.KeyPoint_convert(kps).reshape(-2, 2) if kps else np.zeros((0, 2), np.float32)",
       "NumPy infers the dimension for any negative size in reshape, so -2 is -1")
    old = "out.append((torch.from_numpy(pts).to(image.device), torch.from_numpy(desc).to(image.device)))"
    dev(m, "detect", old, ["out.append((torch.from_numpy(pts).to(None), torch.from_numpy(desc).to(image.device)))",
                           "out.append((torch.from_numpy(pts).to(image.device), torch.from_numpy(desc).to(None)))"],
        "from_numpy gives CPU tensors: without the move they stay there, which only a GPU image notices")
    eq(m, "match", "if desc_a.shape[0] == 0 or desc_b.shape[0] < 2:", "if desc_a.shape[1] == 0 or desc_b.shape[0] < 2:",
       "with no query the distance path also returns an empty (0, 2) result; with 0-length descriptors every "
       "distance is 0 and the strict ratio test keeps none: empty either way")
    eq(m, "match", "best, idx = d.topk(2, dim=1, largest=False)", "best, idx = d.topk(2, largest=False)",
       "topk's default dim is -1, which is 1 for the 2-D distance matrix")
    old = "s1 = torch.cat((s, torch.ones(m, 1, dtype=torch.float64, device=dev)), 1)  # M,3"
    eq(m, "ransac_affine", old, [old.replace("dtype=torch.float64", "dtype=None"),
                                 old.replace("dtype=torch.float64, ", "")],
       "ones are exact in every dtype and torch.cat promotes them to the float64 of s")
    RANSAC_DEV = "the column of ones or the indices on the default device: only GPU points notice"
    dev(m, "ransac_affine", old, [old.replace("device=dev", "device=None"), old.replace("device=dev", "")], RANSAC_DEV)
    dev(m, "ransac_affine", "dev = src.device", "dev = None", RANSAC_DEV)
    dev(m, "ransac_affine", "idx = torch.randint(m, (k, 3), generator=generator).to(dev)",
        "idx = torch.randint(m, (k, 3), generator=generator).to(None)", RANSAC_DEV)
    old = "inv = torch.stack((torch.stack((dp[:, 1, 1], -dp[:, 0, 1]), -1), torch.stack((-dp[:, 1, 0], dp[:, 0, 0]), -1)), -2)"
    eq(m, "ransac_affine", old,
       ["inv = torch.stack((torch.stack((dp[:, 1, 1], -dp[:, 0, 1]), +1), torch.stack((-dp[:, 1, 0], dp[:, 0, 0]), -1)), -2)",
        "inv = torch.stack((torch.stack((dp[:, 1, 1], -dp[:, 0, 1]), -1), torch.stack((-dp[:, 1, 0], dp[:, 0, 0]), +1)), -2)"],
       "the stacked entries are 1-D, so dimension 1 is dimension -1")
    old = "score = inl.sum(1).double() * threshold**2 - torch.where(inl, err2, 0.0).sum(1) / (m + 1)"
    eq(m, "ransac_affine", old, old.replace("err2, 0.0)", "err2, 1.0)"),
       "adds (m - count) / (m + 1): constant for equal counts and in favour of more inliers, so the ranking by "
       "count, then by smaller summed error, is the same (up to float rounding)")
    eq(m, "ransac_affine", old, [old.replace("(m + 1)", "(m - 1)"), old.replace("(m + 1)", "(m + 2)")],
       "a hypothesis's summed inlier error is below (count - 3) threshold^2 <= (m - 3) threshold^2, so divided by "
       "m - 1 or m + 2 it stays below one count's weight: the same ranking")
    eq(m, "ransac_affine", "needed = 0", "needed = 1",
       "at least one chunk has been drawn there, so drawn < min(needed, hypotheses) is false for 0 and 1 alike")
    eq(m, "sift_ransac", "h, w = fixed.shape[-2:]", "h, w = fixed.shape[+2:]",
       "fixed is checked to be 4-D (check_pair), so shape[2:] is shape[-2:]")
    eq(m, "sift_ransac", '"n_matches": [p[0].shape[0] for p in points],', '"n_matches": [p[1].shape[0] for p in points],',
       "the source and target points of the matches have the same number of rows")

    m = "regkit/evaluation.py"
    eq(m, "_fmt", 'return "inf" if v > 0 else "-inf"', ['return "inf" if v >= 0 else "-inf"', 'return "inf" if v > 1 else "-inf"'],
       "the line is reached only for v = +inf or -inf, where v > 0, v >= 0 and v > 1 agree")
    eq(m, "resize_batch", 'h0, w0 = batch["moving"].shape[-2:]', 'h0, w0 = batch["moving"].shape[+2:]',
       "a batch's moving images are N,C,H,W (stacked items; register refuses anything else), so shape[2:] is shape[-2:]")
    eq(m, "resize_batch", "elif v.ndim == 4 and v.shape[-2:] == (h0, w0):", "elif v.ndim == 4 and v.shape[+2:] == (h0, w0):",
       "the same condition has just required 4 dimensions, so shape[2:] is shape[-2:]")
    eq(m, "resize_batch", 'out[k] = spatial.resize_image(v.float(), (h, w), mode="nearest") > 0.5',
       'out[k] = spatial.resize_image(v.float(), (h, w), mode="nearest") >= 0.5',
       "nearest resampling of a 0/1 mask copies values, so none is exactly 0.5")

    m = "regkit/models/dirnet.py"
    eq(m, "DIRNet.forward", "h, w = moving.shape[-2:]", "h, w = moving.shape[+2:]",
       "moving is checked to be 4-D (check_pair) just above, so shape[2:] is shape[-2:]")

    m = "regkit/models/voxelmorph.py"
    eq(m, "VoxelMorph.forward", "if min(moving.shape[-2:]) < self.multiple:", "if min(moving.shape[+2:]) < self.multiple:",
       "moving is checked to be 4-D (check_pair) just above, so shape[2:] is shape[-2:]")
    eq(m, "VoxelMorph.forward",
       'raise ValueError(f"moving and fixed must be at least {self.multiple} px per side, got {tuple(moving.shape[-2:])}")',
       'raise ValueError(f"moving and fixed must be at least {self.multiple} px per side, got {tuple(moving.shape[+2:])}")',
       "moving is checked to be 4-D (check_pair) above, so shape[2:] is shape[-2:]")

    m = "regkit/models/blocks.py"
    LAST = "rsplit('.', k)[-1] is the text after the last dot for every k >= 1 and without k"
    old = 'if stored is not None and stored.rsplit(".", 1)[-1] != cls.__name__:'
    eq(m, "_from_checkpoint", old, [old.replace('rsplit(".", 1)', 'rsplit(".", )'), old.replace('rsplit(".", 1)', 'rsplit(".", 2)')],
       LAST)
    old = "raise ValueError(f\"model {path!r} holds a {stored.rsplit('.', 1)[-1]}, but this method needs a {cls.__name__}\")"
    eq(m, "_from_checkpoint", old, [old.replace("rsplit('.', 1)", "rsplit('.', )"), old.replace("rsplit('.', 1)", "rsplit('.', 2)")],
       LAST)
    old = "f\"train one with regkit.train.Trainer(regkit.models.{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}(...))\""
    eq(m, "as_model", old, [old.replace("rsplit('.', 1)", "rsplit('.', )"), old.replace("rsplit('.', 1)", "rsplit('.', 2)")],
       LAST)
    eq(m, "_from_checkpoint", "state = load_checkpoint(path, map_location=device)", "state = load_checkpoint(path, )",
       "where the state dict is loaded does not matter on any device that holds data: load_state_dict copies it into "
       "the new network, which is then moved to the device (only a meta device, which holds no data, tells them apart)")
    dev(m, "_from_checkpoint", "return net.to(device)", "return net.to(None)",
        "the network is built on the CPU: only a GPU device notices that it stayed there")

    m = "regkit/models/factorised.py"
    old = "self.norm = nn.InstanceNorm2d(channels, affine=False)"
    eq(m, "AdaIN.__init__", old, ["self.norm = nn.InstanceNorm2d(channels, affine=None)", "self.norm = nn.InstanceNorm2d(channels, )"],
       "InstanceNorm2d's affine defaults to False, and None is falsy like False")
    eq(m, "SceneEncoder._up_cat", "return torch.cat((spatial.resize_image(x, skip.shape[-2:]), skip), 1)",
       "return torch.cat((spatial.resize_image(x, skip.shape[+2:]), skip), 1)",
       "skip is a 4-D feature map, so shape[2:] is shape[-2:]")
    eq(m, "normalised_scene_distance", "with torch.autocast(device_type=a.device.type, enabled=False):",
       ["with torch.autocast(device_type=a.device.type, ):", "with torch.autocast(device_type=a.device.type, enabled=True):"],
       "the inputs are cast to float32 inside and neither instance_norm nor mse_loss runs in lower precision under "
       "autocast, so the guard changes no value")

    m = "regkit/models/sasnet.py"
    SIZE_LINES = ("if min(moving.shape[-2:]) < 9:  # the scene encoder's 1/8 level needs more than one pixel",
                  'raise ValueError(f"moving must be at least 9x9 pixels, got {tuple(moving.shape[-2:])}")')
    for old in SIZE_LINES:
        eq(m, "SASNet.parts", old, old.replace("[-2:]", "[+2:]"),
           "moving is checked to be 4-D (check_pair) above, so shape[2:] is shape[-2:]")
    eq(m, "SASNet.forward", 'return RegResult(warped=self.parts(moving, fixed)["output"], disp=None)',
       'return RegResult(warped=self.parts(moving, fixed)["output"], )', "RegResult's disp defaults to None")
    eq(m, "SASNetObjective.forward", "return loss, logs, RegResult(warped=out, disp=None)",
       "return loss, logs, RegResult(warped=out, )", "RegResult's disp defaults to None")
    eq(m, "SASNetObjective.forward", "with torch.autocast(device_type=moving.device.type, enabled=False):",
       ["with torch.autocast(device_type=moving.device.type, ):",
        "with torch.autocast(device_type=moving.device.type, enabled=True):"],
       "every term is an L1 loss of float32 tensors or the scene distance, which guards itself: no operation inside "
       "runs in lower precision under autocast")

    m = "regkit/models/gpe.py"
    eq(m, "FrameCache._keep", "self.feats = self.feats[keep] if self.feats is not None else None",
       "self.feats = self.feats[keep] if (self.feats is not None) or True else None",
       "_keep runs only on a filled cache (after update, or from restart when the cache is not empty): feats is never None")
    for fn, old in (("FrameCache.restart", 'frames = frames.detach().to("cpu", torch.long)'),
                    ("FrameCache.restart", 'seqs = torch.zeros_like(frames) if sequences is None else '
                                           'sequences.detach().to("cpu", torch.long)')):
        eq(m, fn, old, [old.replace('to("cpu", torch.long)', 'to("cpu", None)'), old.replace('to("cpu", torch.long)', 'to("cpu", )')],
           "restart only compares the frame and sequence values (min, int(), <=, ==), which any integer dtype does alike")
    CACHE_CPU = "the cache lives on the CPU: without the move GPU frames or ids would stay on the GPU, which only GPU inputs notice"
    for fn in ("FrameCache.restart", "FrameCache.update"):
        for old in ('frames = frames.detach().to("cpu", torch.long)',
                    'seqs = torch.zeros_like(frames) if sequences is None else sequences.detach().to("cpu", torch.long)'):
            dev(m, fn, old, [old.replace('to("cpu", torch.long)', "to(None, torch.long)"),
                             old.replace('to("cpu", torch.long)', "to(torch.long)")], CACHE_CPU)
    old = 'check_positive("window", window, integer=True, allow_zero=True)'
    eq(m, "GPE.__init__", old, [old.replace("integer=True", "integer=None"), old.replace("integer=True, ", ""),
                                old.replace("integer=True", "integer=False")],
       "GPE then builds FrameCache(window), which runs the same check with the same message")
    dev(m, "GPE.context", "seqs = torch.zeros_like(frames) if sequences is None else sequences.to(frames.device)",
        "seqs = torch.zeros_like(frames) if sequences is None else sequences.to(None)",
        "only sequence ids on another device than the frames notice")
    eq(m, "GPE.context", "keys = torch.cat((pooled, cx.to(pooled.dtype)))  # K,D", "keys = torch.cat((pooled, cx.to(None)))  # K,D",
       "the cache entries are returned in pooled's dtype already (entries(like=pooled)), and pooled[:0] in training")
    eq(m, "GPE.context", "return self.mlp(torch.cat((learned.to(pooled.dtype), sinus, attn_out[:, 0]), dim=1))",
       "return self.mlp(torch.cat((learned.to(None), sinus, attn_out[:, 0]), dim=1))",
       "outside autocast the module runs only in the scene's dtype, so learned is in pooled's dtype; under autocast "
       "torch.cat promotes exactly and the first Linear casts to the autocast dtype either way")
    old = 'frame = torch.full((n,), frame, dtype=torch.long, device="cpu")   # checked here, then moved'
    eq(m, "frame_indices", old, [old.replace("dtype=torch.long", "dtype=None"), old.replace(", dtype=torch.long", "")],
       "torch.full with a Python int infers int64, and the function converts to long at the end anyway")
    eq(m, "sinusoidal_encoding", "t = frames.to(torch.float32)[:, None]", "t = frames.to(None)[:, None]",
       "integer frames times the float32 frequencies promote to float32 exactly as the explicit cast does")

    m = "regkit/models/gpereg.py"
    for old in SIZE_LINES:
        eq(m, "GPERegNet._check", old, old.replace("[-2:]", "[+2:]"),
           "moving is checked to be 4-D (check_pair) above, so shape[2:] is shape[-2:]")
    eq(m, "GPERegNet.forward", 'return RegResult(warped=self.parts(moving, fixed, frame, sequence)["output"], disp=None)',
       'return RegResult(warped=self.parts(moving, fixed, frame, sequence)["output"], )', "RegResult's disp defaults to None")
    eq(m, "GPERegObjective.forward", 'return loss, logs, RegResult(warped=parts["output"], disp=None)',
       'return loss, logs, RegResult(warped=parts["output"], )', "RegResult's disp defaults to None")
    for old in ("frames = frame_indices(frame, moving.shape[0], moving.device)",
                "seqs = sequence_ids(sequence, moving.shape[0], moving.device)"):
        dev(m, "GPERegNet.parts", old, old.replace("moving.device)", "None)"),
            "the ids are then made on the CPU: only GPU images notice")

    m = "regkit/models/transmorph.py"
    LABELS_ = ("the region labels stay distinct and every pixel gets one; the mask only compares labels for equality "
               "(exact masks in tests/test_models_deformable.py)")
    eq(m, "_shift_mask", "cnt = 0", "cnt = 1", LABELS_)
    eq(m, "_shift_mask", "cnt += 1", ["cnt -= 1", "cnt += 2"], LABELS_)
    REGIONS = ("the token grid is a multiple of the window (padded), so the first region [0, size - window) ends on a "
               "window boundary: the changed slice only merges or relabels regions that never share a window, or is "
               "overwritten by the slices after it")
    for axis in ("hs", "ws"):
        old = f"for {axis} in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):"
        eq(m, "_shift_mask", old, [old.replace("slice(0, -window)", "slice(None, -window)"),
                                   old.replace("slice(0, -window)", "slice(0, None)"),
                                   old.replace("slice(0, -window)", "slice(-window)"),
                                   old.replace("slice(-window, -shift)", "slice(None, -shift)"),
                                   old.replace("slice(-window, -shift)", "slice(-window, None)"),
                                   old.replace("slice(-window, -shift)", "slice(-shift)"),
                                   old.replace("slice(-window, -shift)", "slice(+window, -shift)")], REGIONS)
    eq(m, "PatchMerging.__init__", "self.reduce = nn.Linear(4 * dim, 2 * dim, bias=False)",
       "self.reduce = nn.Linear(4 * dim, 2 * dim, bias=None)", "bias=None is falsy like False: no bias")
    eq(m, "WindowAttention.__init__", 'self.register_buffer("rel_index", rel[0] * (2 * window - 1) + rel[1], persistent=False)',
       'self.register_buffer("rel_index", rel[0] * (2 * window - 1) + rel[1], persistent=None)',
       "persistent=None is falsy like False: the buffer stays out of the state dict")
    old = 'ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")'
    eq(m, "WindowAttention.__init__", old, [old.replace('indexing="ij"', "indexing=None"), old.replace(', indexing="ij"', ", ")],
       "torch.meshgrid's default indexing is 'ij' (it warns once per process, which a test cannot rely on)")

    m = "regkit/models/air.py"
    old = "if h // patch_size < 2 or w // patch_size < 2:"
    eq(m, "_check_model_args", old, ["if h / patch_size < 2 or w // patch_size < 2:", "if h // patch_size < 2 or w / patch_size < 2:"],
       "the sizes are checked to be divisible by patch_size just above, so / and // give the same number")
    eq(m, "_Attention.forward",
       "out, weights = self.mha(query, memory, memory, need_weights=need_weights, average_attn_weights=True)",
       "out, weights = self.mha(query, memory, memory, need_weights=need_weights, )",
       "average_attn_weights=True is MultiheadAttention's default")
    dev(m, "_run", "net = as_model(model, cls, moving.device)", "net = as_model(model, cls, None)",
        "a module is used where it is; only a checkpoint saved on another device than the inputs' would stay there")

    m = "regkit/classical/demons.py"
    old = "snapshots.append((done, disp.clone() if size == full else spatial.resize_disp(disp, full, check=False)))"
    eq(m, "demons", old, [old.replace("check=False", ""), old.replace("check=False", "check=True")], CHECKS)
    old = "warped = spatial.warp(moving.float(), disp, check=False)"
    eq(m, "demons", old, [old.replace("check=False", "check=None"), old.replace("check=False", ""),
                          old.replace("check=False", "check=True")], CHECKS)
    eq(m, "demons", "if tuple(disp.shape[-2:]) != full:", "if tuple(disp.shape[-2:]) == full:",
       "the schedule always ends at full resolution, so the field is full size here; resizing it to its own size "
       "(bilinear, align_corners=True, scale 1) is an exact copy")


_load_reviews()

STATUS_DETECTED = {"killed", "timeout", "segfault"}


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()


def lift_decorators(source: str) -> tuple[str, list[str]]:
    """Take the decorators off every decorated function (module level or in a class body) and
    apply them again on the blank line after the function, so that mutmut mutates it.

    ``@staticmethod`` and ``@classmethod`` alone stay (mutmut handles them). Returns the new
    source, with every line where it was, and the names of the functions changed.

    >>> src = "import functools\\n\\n@functools.lru_cache(maxsize=2)\\ndef f(x):\\n    return x\\n\\n\\ny = f(1)\\n"
    >>> new, names = lift_decorators(src)
    >>> print(new)
    import functools
    <BLANKLINE>
    <BLANKLINE>
    def f(x):
        return x
    f = functools.lru_cache(maxsize=2)(f)
    <BLANKLINE>
    y = f(1)
    <BLANKLINE>
    >>> names
    ['f']
    """
    tree = ast.parse(source)
    lines = source.split("\n")
    lifted = []

    def visit(body, owner: str = ""):
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, node.name + ".")
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or not node.decorator_list:
                continue
            decs = node.decorator_list
            if len(decs) == 1 and isinstance(decs[0], ast.Name) and decs[0].id in ("staticmethod", "classmethod"):
                continue
            expr = node.name
            for dec in reversed(decs):
                expr = f"{ast.unparse(dec)}({expr})"
            after = node.end_lineno   # 0-based index of the line after the function
            if after >= len(lines) or lines[after].strip():
                raise ValueError(f"{owner}{node.name}: no blank line after it to re-apply its decorators")
            for i in range(min(d.lineno for d in decs) - 1, node.lineno - 1):
                lines[i] = ""
            lines[after] = " " * node.col_offset + f"{node.name} = {expr}"
            lifted.append(owner + node.name)

    visit(tree.body)
    return "\n".join(lines), lifted


def _function_spans(source: str) -> dict[str, tuple[int, int]]:
    """``{"f": (first, last line), "Class.method": ...}`` of module-level functions and methods."""
    spans = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            spans[node.name] = (node.lineno, node.end_lineno)
        elif isinstance(node, ast.ClassDef):
            for sub in node.body:
                if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    spans[f"{node.name}.{sub.name}"] = (sub.lineno, sub.end_lineno)
    return spans


def function_of(mutant: str) -> str:
    """``regkit.x.xǁCǁf__mutmut_3`` -> ``C.f``; ``regkit.x.x_g__mutmut_1`` -> ``g``."""
    name = re.sub(r"__mutmut_\d+$", "", mutant.rpartition(".")[2])
    if name.startswith("xǁ"):
        cls, _, fn = name[2:].partition("ǁ")
        return f"{cls}.{fn}"
    return name[2:]


def describe_mutant(diff: str, source_lines: list[str], span: tuple[int, int]) -> dict:
    """The first changed line of a mutant (1-based, in the module) and the lines before and after.

    The hunk header of mutmut's diff (which starts at the function's ``def`` line) gives the
    position; of the lines with the same text, the one nearest to it is taken (two identical
    statements in one function stay apart).
    """
    lines = diff.splitlines()
    old = [ln[1:] for ln in lines if ln.startswith("-") and not ln.startswith("---")]
    new = [ln[1:] for ln in lines if ln.startswith("+") and not ln.startswith("+++")]
    expected, k = None, None
    for ln in lines:
        hunk = re.match(r"@@ -(\d+)", ln)
        if hunk:
            k = int(hunk.group(1))
        elif k is not None and ln.startswith(" "):
            k += 1
        elif k is not None and ln.startswith("-") and not ln.startswith("---"):
            expected = span[0] + k - 1
            break
    line = None
    if old:
        target = old[0].strip()
        candidates = [i for i in range(max(span[0] - 3, 1), span[1] + 1) if source_lines[i - 1].strip() == target]
        if candidates:
            line = min(candidates, key=lambda i: abs(i - (expected or i)))
    return {
        "line": line,
        "old": "\n".join(s.strip() for s in old),
        "new": "\n".join(s.strip() for s in new),
    }


def equivalent_reason(module: str, function: str, old: str, new: str, table=None) -> str | None:
    for e in EQUIVALENT if table is None else table:
        if e["module"] == module and e["function"] == function and e["old"] == old and e["new"] == new:
            return e["reason"]
    return None


def prepare(scratch: Path, module: str, tests: list[str], working_tree: bool, rev: str = "HEAD") -> list[str]:
    """A fresh copy of ``regkit/``, ``tests/`` and ``pyproject.toml`` (at ``rev``, or from the
    working tree) in ``scratch``, the module's decorators lifted, and mutmut's settings in
    ``setup.cfg``."""
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    paths = ["regkit", "tests", "pyproject.toml"]
    if working_tree:
        for p in paths:
            src = ROOT / p
            if src.is_dir():
                shutil.copytree(src, scratch / p, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, scratch / p)
    else:
        archive = subprocess.run(["git", "archive", rev, *paths], cwd=ROOT, check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(scratch)], input=archive, check=True)
    target = scratch / module
    new, lifted = lift_decorators(target.read_text())
    target.write_text(new)
    present = [t for t in tests if (scratch / t.partition("::")[0]).is_file()]
    # a pytest plugin that runs the value tests first and the bad-input table last, so that most
    # mutants die on a fast test
    files = [t.partition("::")[0] for t in present]
    order = sorted(dict.fromkeys(files), key=lambda t: (t == _BAD, "_values" not in t, files.index(t)))
    (scratch / "mutation_order.py").write_text(_ORDER_PLUGIN.format(order=order))
    cfg = [
        "[mutmut]",
        "source_paths = regkit",
        f"only_mutate = {module}",
        "pytest_add_cli_args_test_selection =",
        *(f"    {t}" for t in present),
        "pytest_add_cli_args =",
        "    -p",
        "    no:cacheprovider",
        "    -p",
        "    mutation_order",
        "also_copy =",
        "    mutation_order.py",
        "process_isolation = forkserver",
        "forkserver_warmup = collect",
        "timeout_multiplier = 6.0",
        "timeout_constant = 5.0",
        "use_git_change_detection = false",
        "track_dependencies = false",
        "use_setproctitle = false",
    ]
    (scratch / "setup.cfg").write_text("\n".join(cfg) + "\n")
    return lifted


_ORDER_PLUGIN = '''"""Run the test files in this order (fast value tests first); mutation testing only."""

import torch

# the meta device's one-time set-up (about a second) is paid here, in the process every mutant's
# run is forked from, not once per mutant
torch.arange(2, device="meta") + 1

ORDER = {order!r}


def pytest_collection_modifyitems(items):
    def rank(item):
        path = item.nodeid.partition("::")[0]
        return ORDER.index(path) if path in ORDER else len(ORDER)

    items.sort(key=rank)
'''


def _env() -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    return env


def run_mutmut(scratch: Path, names: list[str] | None, log) -> None:
    mutmut = Path(sys.executable).parent / "mutmut"
    cmd = ["nice", "-n", "15", str(mutmut), "run", "--max-children", "1", *(names or [])]
    proc = subprocess.run(cmd, cwd=scratch, env=_env(), stdout=log, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"mutmut failed in {scratch} (exit {proc.returncode}); see its log")


_READER = r"""
import json, sys
from mutmut.mutation.data import SourceFileMutationData
from mutmut.mutation.diff_apply import get_diff_for_mutant
from mutmut.stats import status_by_exit_code
m = SourceFileMutationData(path=sys.argv[1]); m.load()
out = {}
for key, code in m.exit_code_by_key.items():
    status = status_by_exit_code[code]
    out[key] = {"status": status, "diff": get_diff_for_mutant(key, path=sys.argv[1]) if status != "killed" else None}
print(json.dumps(out))
"""


def read_results(scratch: Path, module: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", _READER, module], cwd=scratch, env=_env(), check=True,
                          capture_output=True, text=True)
    return json.loads(proc.stdout)


def summarise(module: str, results: dict, source: str) -> dict:
    lines, spans = source.split("\n"), _function_spans(source)
    counts = {k: 0 for k in ("killed", "timeout", "segfault", "survived", "no tests", "suspicious",
                             "not checked", "equivalent", "device_only")}
    survivors, equivalents = [], []
    for key in sorted(results, key=lambda k: (function_of(k), int(k.rpartition("_")[2]))):
        r = results[key]
        status = r["status"]
        if status in STATUS_DETECTED or status == "not checked":
            counts[status] += 1
            continue
        fn = function_of(key)
        info = describe_mutant(r["diff"] or "", lines, spans.get(fn, (1, len(lines))))
        entry = {"mutant": key.rpartition(".")[2], "function": fn, "file": module, **info, "status": status}
        reason = equivalent_reason(module, fn, info["old"], info["new"])
        if reason is not None:
            counts["equivalent"] += 1
            equivalents.append({**entry, "reason": reason})
        else:
            counts[status] = counts.get(status, 0) + 1
            note = equivalent_reason(module, fn, info["old"], info["new"], DEVICE_ONLY)
            if note is not None:
                counts["device_only"] += 1
                entry["device_only"] = note
            survivors.append({**entry, "diff": r["diff"]})
    total = len(results)
    checked = total - counts["not checked"]
    detected = counts["killed"] + counts["timeout"] + counts["segfault"]
    counted = checked - counts["equivalent"]
    return {
        "mutants": total,
        "checked": checked,
        **{k.replace(" ", "_"): v for k, v in counts.items()},
        "score": round(detected / counted, 4) if counted else None,
        "survivors": survivors,
        "equivalents": equivalents,
    }


def overall(modules: dict) -> dict:
    total = sum(m["mutants"] for m in modules.values())
    checked = sum(m.get("checked", m["mutants"]) for m in modules.values())
    eq = sum(m["equivalent"] for m in modules.values())
    det = sum(m["killed"] + m["timeout"] + m["segfault"] for m in modules.values())
    return {"mutants": total, "checked": checked, "detected": det, "equivalent": eq,
            "not_detected": checked - eq - det, "score": round(det / (checked - eq), 4) if checked > eq else None}


_LISTER = r"""
import json, sys
from pathlib import Path
from mutmut.mutation.file_mutation import mutate_file_contents
from mutmut.utils.format_utils import get_mutant_name
path = sys.argv[1]
names = mutate_file_contents(path, Path(path).read_text()).mutant_names
print(json.dumps([get_mutant_name(Path(path), n) for n in names]))
"""


def sample_names(scratch: Path, module: str, fraction: float, seed: int) -> list[str]:
    """A seeded random ``fraction`` of the module's mutants (mutmut's names)."""
    proc = subprocess.run([sys.executable, "-c", _LISTER, module], cwd=scratch, env=_env(), check=True,
                          capture_output=True, text=True)
    names = json.loads(proc.stdout)
    k = max(1, round(fraction * len(names)))
    return sorted(random.Random(seed).sample(names, k))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("modules", nargs="*", help="module paths (default: every module of MODULES)")
    ap.add_argument("--list", action="store_true", help="print the modules and their tests, and stop")
    ap.add_argument("--scratch", type=Path, default=Path(tempfile.gettempdir()) / "regkit-mutation")
    ap.add_argument("--output", type=Path, default=ROOT / "results" / "mutation.json")
    ap.add_argument("--rev", default="HEAD", help="the commit whose files are mutated and tested (default: HEAD)")
    ap.add_argument("--working-tree", action="store_true",
                    help="mutate and test the files as they are in the working tree, not a commit")
    ap.add_argument("--sample", type=float, default=None,
                    help="run a seeded random fraction of each module's mutants (e.g. 0.2), not all")
    ap.add_argument("--seed", type=int, default=0, help="seed of --sample")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="record the per-module scores of another results file beside these (e.g. before new tests)")
    ap.add_argument("--baseline-note", default="an earlier run, for comparison",
                    help="what the baseline is (stored with it)")
    ap.add_argument("--summarise-only", action="store_true",
                    help="summarise the scratch copy's last run again (e.g. after reviewing equivalents); run nothing")
    ap.add_argument("--recheck", action="store_true",
                    help="rerun only the mutants not killed by the previous run in the scratch copy")
    args = ap.parse_args(argv)

    if args.list:
        for m, t in MODULES.items():
            print(m, "<-", " ".join(t))
        return 0
    modules_given = bool(args.modules) or args.baseline is None
    modules = args.modules or list(MODULES)
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        ap.error(f"unknown modules {unknown}; see --list")
    import mutmut

    version = getattr(mutmut, "__version__", None) or _pkg_version("mutmut")
    if version != MUTMUT_VERSION:
        print(f"note: mutmut {version}; the record was made with {MUTMUT_VERSION}", file=sys.stderr)

    record = json.loads(args.output.read_text()) if args.output.is_file() else {}
    record.setdefault("modules", {})
    if args.baseline is not None:
        record["baseline"] = _baseline(args.baseline, args.baseline_note)
        if not modules_given:
            _write(args.output, record, version)
            return 0
    dirty = bool(_git("status", "--porcelain", "--", "regkit", "tests")) if args.working_tree else False
    for module in modules:
        # read per module: each module's copy is made from the checkout as it is when its turn comes
        commit = "working tree on " + _git("rev-parse", "HEAD") if args.working_tree else _git("rev-parse", args.rev)
        slug = module.replace("/", "_").removesuffix(".py")
        scratch = args.scratch / slug
        tests = MODULES[module]
        start = time.time()
        log_path = args.scratch / f"{slug}.log"
        args.scratch.mkdir(parents=True, exist_ok=True)
        print(f"{module}: mutating in {scratch} (log {log_path})", flush=True)
        with open(log_path, "a") as log:
            if args.summarise_only:
                if not (scratch / "mutants").is_dir():
                    raise SystemExit(f"--summarise-only: no run in {scratch}")
                lifted = record["modules"].get(module, {}).get("decorators_lifted", [])
            elif args.recheck:
                if not (scratch / "mutants").is_dir():
                    raise SystemExit(f"--recheck: no previous run in {scratch}")
                _sync_tests(scratch, args.working_tree, args.rev)
                before = read_results(scratch, module)
                names = [k for k, r in before.items() if r["status"] not in STATUS_DETECTED]
                lifted = record["modules"].get(module, {}).get("decorators_lifted", [])
                if names:
                    run_mutmut(scratch, names, log)
            else:
                lifted = prepare(scratch, module, tests, args.working_tree, args.rev)
                names = sample_names(scratch, module, args.sample, args.seed) if args.sample else None
                run_mutmut(scratch, names, log)
        results = read_results(scratch, module)
        source = (scratch / module).read_text()
        summary = summarise(module, results, source)
        minutes = round((time.time() - start) / 60, 1)
        prev = record["modules"].get(module, {})
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        entry = {
            "tests": [t for t in tests if (scratch / t.partition("::")[0]).is_file()],
            "decorators_lifted": lifted,
            "commit": commit,
            "working_tree_changes": dirty,
            "date": now,
            "sample": {"fraction": args.sample, "seed": args.seed} if args.sample else None,
            "minutes": minutes,
            **summary,
        }
        if args.recheck or args.summarise_only:   # the mutants are still those of the first run
            for key in ("commit", "working_tree_changes", "date", "sample", "minutes", "tests"):
                entry[key] = prev.get(key, entry[key])
            entry["recheck"] = prev.get("recheck")
        if args.recheck:
            entry["recheck"] = {"tests_commit": commit, "date": now, "minutes": minutes,
                                "mutants_rerun": len(names)}
        record["modules"][module] = entry
        print(f"{module}: {summary['mutants']} mutants, score {summary['score']}, "
              f"{len(summary['survivors'])} not killed, {summary['equivalent']} equivalent, {minutes} min",
              flush=True)
        _write(args.output, record, version)
    return 0


def _sync_tests(scratch: Path, working_tree: bool, rev: str) -> None:
    """Bring the scratch copy's tests (and mutmut's copy of them) up to date."""
    for dest in (scratch / "tests", scratch / "mutants" / "tests"):
        shutil.rmtree(dest)
        if working_tree:
            shutil.copytree(ROOT / "tests", dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            dest.mkdir()
            archive = subprocess.run(["git", "archive", rev, "tests"], cwd=ROOT, check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "--strip-components=1", "-C", str(dest)], input=archive, check=True)


def _pkg_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


_SUMMARY_KEYS = ("mutants", "checked", "killed", "timeout", "segfault", "survived", "no_tests", "suspicious",
                 "equivalent", "device_only", "score", "sample", "commit", "date", "minutes", "recheck_minutes")


def _baseline(path: Path, rules: str) -> dict:
    """The per-module summaries of another record (e.g. a run before new tests), for comparison."""
    other = json.loads(path.read_text())
    mods = other.get("modules", {})
    return {"what": rules, "overall": overall(mods),
            "per_module": {m: {k: v[k] for k in _SUMMARY_KEYS if k in v} for m, v in sorted(mods.items())}}


def _write(path: Path, record: dict, version: str) -> None:
    import torch

    modules = dict(sorted(record["modules"].items()))
    out = {
        "what": "mutation testing of the modules the book's correctness rests on (scripts/mutation.py)",
        "tool": "mutmut",
        "tool_version": version,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "score_rule": "(killed + timeout + segfault) / (checked - equivalent); survivors, 'no tests' and "
                      "device-only survivors count against",
        "overall": overall(modules),
        # Modules of MODULES with no run on record: the overall score does not cover them.
        "modules_not_run": sorted(set(MODULES) - set(modules)),
        "per_module": {m: {k: v[k] for k in _SUMMARY_KEYS if k in v} for m, v in modules.items()},
        "modules": modules,
    }
    if record.get("baseline"):
        out["baseline"] = record["baseline"]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(path)


if __name__ == "__main__":
    sys.exit(main())
