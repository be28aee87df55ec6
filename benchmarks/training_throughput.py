"""Benchmark: training steps per second and pairs per second of every learned model.

Each model is built as its table builds it (``regkit.experiments.tables``), with its table's
training objective, at the size and batch its table trains at (read from the tables' settings, not
repeated here), on seeded random pairs (throughput does not depend on the content):

- on the CPU, the runs a reader makes there: the AiR table's DIRNet, AiR and MAPT-AiR (``full``
  profile, 32 px) and the GPEReg tables' VoxelMorph, TransMorph, SAS-Net and GPEReg-Net in the
  ``cpu`` profile (128 px, reduced widths); ``--paper-size`` adds the ``full`` profile's models at
  256 px (about a minute per GPEReg-Net step on one thread);
- on a GPU, every model at its ``full`` profile's size and batch.

Two ways of running the same steps, in the same process:

- *bare* (the reference): ``objective(model, batch)``, ``zero_grad``, ``backward``, gradient
  clipping, ``optimizer.step`` in a plain loop -- the least a training step can cost;
- *Trainer*: :class:`regkit.train.Trainer` ``fit`` for one epoch of ``k`` and of ``2 k`` steps;
  the difference over ``k`` is its cost per step, and what the ``k``-step fit takes beyond ``k``
  bare steps is its fixed cost per fit (model to device, data loader, validation off, no
  checkpoint).

Figures per model and size: bare steps/s and pairs/s, the Trainer's per-step time over the bare
one (should be about 1: the Trainer adds nothing measurable per step) and its fixed seconds per
fit. CPU on one thread; with CUDA the same on the GPU (bf16 autocast where the Trainer uses it).

Usage::

    python benchmarks/training_throughput.py               # writes results/training_throughput_benchmark.json
    python benchmarks/training_throughput.py --paper-size  # also the 256 px models on the CPU
    python benchmarks/training_throughput.py --quick       # 2 timed steps each, no Trainer; prints only
    python benchmarks/training_throughput.py --cuda-only --out results/gpu/training_throughput_benchmark.json
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _bench import add_cuda_only, devices, load_average, machine, one_thread, synchronize, write

AIR_MODELS = ("dirnet", "air", "mapt_air")
GPEREG_MODELS = ("voxelmorph", "transmorph", "sasnet", "gpereg")


def cases(device_type: str, paper_size: bool = False) -> list[tuple[str, str, str, int, int]]:
    """``(model, table, profile, size, batch)`` of the training runs to time on ``device_type``.

    >>> [c for c in cases("cpu") if c[0] == "gpereg"]
    [('gpereg', 'gpereg', 'cpu', 128, 8)]
    """
    from regkit.experiments.tables import air_table1, gpereg_setup

    air = air_table1.settings("full")
    out = [(m, "air", "full", air["size"], air["batch_size"]) for m in AIR_MODELS]
    profiles = ["full"] if device_type == "cuda" else ["cpu"] + (["full"] if paper_size else [])
    for profile in profiles:
        s = gpereg_setup.settings(profile)
        # a full-size batch of paper-size models is minutes per step on one CPU thread
        batch = s["batch_size"] if device_type == "cuda" else min(s["batch_size"], 8)
        out += [(m, "gpereg", profile, s["size"], batch) for m in GPEREG_MODELS]
    return out


def build(name: str, table: str, profile: str):
    """``(model, objective, lr, grad_clip)`` as the table trains it in ``profile``."""
    if table == "air":
        from regkit.experiments.tables import air_table1 as t
        from regkit.train import RegistrationObjective

        s = t.settings(profile)
        model = t.build_model(name, profile)
        objective = RegistrationObjective(s["similarity"], s["smoothness"], weight=s["smoothness_weight"])
        lr = s["lr"][name] if isinstance(s["lr"], dict) else s["lr"]  # per model in the AiR table
        return model, objective, lr, s["grad_clip"]
    from regkit.experiments.tables import gpereg_setup as t

    s = t.settings(profile)
    return t.build_model(name, profile), t.build_objective(name, profile), s["lr"], s["grad_clip"]


def batch_of(n: int, size: int, seed: int = 0) -> dict:
    from regkit import spatial

    g = torch.Generator().manual_seed(seed)
    fixed = spatial.resize_image(torch.rand(n, 1, size // 4, size // 4, generator=g), (size, size))
    disp = spatial.random_smooth_disp(n, (size, size), max_disp=size / 32, generator=g)
    return {"moving": spatial.warp(fixed, disp), "fixed": fixed}


def bare_steps(model, objective, lr, grad_clip, batch, steps: int, device) -> list[float]:
    params = [p for p in model.parameters() if p.requires_grad]
    if isinstance(objective, torch.nn.Module):
        params += [p for p in objective.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    model.train()
    times = []
    for _ in range(steps + 1):   # the first step warms up (allocations, kernels)
        synchronize(device)
        t0 = time.perf_counter()
        out = objective(model, batch)
        opt.zero_grad(set_to_none=True)
        out[0].backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, grad_clip)
        opt.step()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return times[1:]


def trainer_seconds(name, table, profile, size, batch_size, steps: int, device) -> float:
    from regkit.train import TensorPairs, TrainConfig, Trainer

    model, objective, lr, grad_clip = build(name, table, profile)
    data = batch_of(batch_size * steps, size)
    cfg = TrainConfig(epochs=1, batch_size=batch_size, lr=lr, grad_clip=grad_clip, steps_per_epoch=steps,
                      scheduler="none", progress=False, log=False, metrics=("mse",), shuffle=False)
    trainer = Trainer(model, objective, cfg, device=device)
    synchronize(device)
    t0 = time.perf_counter()
    trainer.fit(TensorPairs(**data))
    synchronize(device)
    return time.perf_counter() - t0


def case(name, table, profile, size, batch_size, steps, device, with_trainer=True, log=print) -> dict:
    from regkit import seed_everything

    seed_everything(0)
    model, objective, lr, grad_clip = build(name, table, profile)
    model, objective = model.to(device), objective.to(device)
    batch = {k: v.to(device) for k, v in batch_of(batch_size, size).items()}
    amp = device.type == "cuda" and torch.cuda.is_bf16_supported()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        ts = bare_steps(model, objective, lr, grad_clip, batch, steps, device)
    step = statistics.median(ts)
    row = {"model": name, "table": table, "profile": profile, "size": size, "batch": batch_size, "device": str(device),
           "parameters": sum(p.numel() for p in model.parameters()), "bf16_autocast": amp,
           "bare": {"seconds_per_step": step, "steps_per_second": 1 / step, "pairs_per_second": batch_size / step,
                    "timed_steps": len(ts)}}
    if with_trainer:
        k = max(2, steps)
        short = trainer_seconds(name, table, profile, size, batch_size, k, device)
        long = trainer_seconds(name, table, profile, size, batch_size, 2 * k, device)
        per_step = max(long - short, 0.0) / k
        # the fixed cost against the bare loop's median step: the difference of two fits is too
        # noisy for it (one slow step moves it by a whole step)
        row["trainer"] = {"seconds_per_step": per_step, "fixed_seconds_per_fit": short - k * step,
                          "time_ratio_per_step_vs_bare": per_step / step, "steps": [k, 2 * k]}
    tr = row.get("trainer")
    log(f"{device.type:4s} {name:10s} {profile:4s} {size:4d} px x{batch_size:<3d} {1 / step:8.2f} steps/s {batch_size / step:9.1f} pairs/s"
        + (f"   Trainer per step x{tr['time_ratio_per_step_vs_bare']:.2f}, fixed {tr['fixed_seconds_per_fit']:.2f} s/fit"
           if tr else ""))
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 timed steps, no Trainer runs, CPU sizes only; print only")
    p.add_argument("--steps", type=int, default=3, help="timed steps per case")
    p.add_argument("--paper-size", action="store_true",
                   help="also time the full profile's 256 px models on the CPU (about a minute per GPEReg-Net step)")
    p.add_argument("--models", nargs="*", default=None, help="only these models")
    p.add_argument("--trainer-max-size", type=int, default=128,
                   help="time the Trainer only up to this size (its cost per step does not grow with the model)")
    p.add_argument("--out", default=None)
    add_cuda_only(p)
    args = p.parse_args(argv)
    one_thread()
    start = time.perf_counter()
    info = machine()
    rows = []
    for device in map(torch.device, devices(args.cuda_only)):
        todo = [c for c in cases(device.type, args.paper_size and not args.quick)
                if args.models is None or c[0] in args.models]
        for name, table, profile, size, batch_size in todo:
            rows.append(case(name, table, profile, size, batch_size, 2 if args.quick else args.steps, device,
                             with_trainer=not args.quick and size <= args.trainer_max_size))
    if args.quick:
        return 0
    record = {"what": __doc__.split("\n\n")[0], "rows": rows, "machine": info}
    path = write("training_throughput", record, profile="full", seed=0, wall=time.perf_counter() - start,
                 out=args.out)
    print(f"wrote {path} (load average at the end {load_average()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
