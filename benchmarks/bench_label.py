"""`neurostation label` on a 512 x 512 x 256 binary volume against cc3d.connected_components and
skimage.measure.label on the whole array in memory: same partition (and the same numbering as
cc3d in x-fastest order), time ratios, peak RSS; then the volume 8 times larger (tiled 2x2x2)
against cc3d again: start-up (imports, process pools) no longer dominates there, and our peak
RSS stays flat while cc3d's grows 8 times. Every run is a subprocess measured by measure_run
(wall, CPU, peak RSS); the last lines say per size whether --jobs 2 beats cc3d's single call
(the issue's goal), and at 1x our time without the start-up (a second run in one process).

    .venv/bin/python benchmarks/bench_label.py [--workdir DIR] [--skip-large]
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import tifffile
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from measure import measure_run  # noqa: E402

SHAPE_ZYX = (256, 512, 512)
PYTHON = sys.executable


def make_mask(seed=0):
    """Blobs: smoothed noise above a level (~30 % foreground, thousands of objects)."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(SHAPE_ZYX, dtype=np.float32)
    smooth = ndimage.gaussian_filter(noise, 2.0)
    return (smooth > 0.12).astype(np.uint8)


def write_mask(path, mask, tiles=1):
    """A ZYX TIFF of the mask repeated `tiles` times along each axis, plane by plane."""
    z, y, x = mask.shape

    def planes():
        for _ in range(tiles):
            for plane in mask:
                yield np.tile(plane, (tiles, tiles))

    tifffile.imwrite(path, planes(), shape=(z * tiles, y * tiles, x * tiles), dtype=np.uint8,
                     metadata={"axes": "ZYX"}, bigtiff=tiles > 1)


def reference(kind, src, out):
    """Subprocess body: label the whole TIFF in memory with cc3d or skimage, save the labels
    (`out`) and the call's seconds (`out`.seconds). Kind "cc3d-warm" saves nothing and times a
    second call in the same process, whose memory comes back from the allocator instead of
    fresh pages (on this VM first touches of big allocations dominate cc3d's call at 8x)."""
    mask = tifffile.imread(src)

    def call():
        if kind.startswith("cc3d"):
            import cc3d

            return cc3d.connected_components(np.asfortranarray(mask.transpose(2, 1, 0)),
                                             connectivity=26).transpose(2, 1, 0)
        from skimage.measure import label

        return label(mask, connectivity=3)

    if kind == "cc3d-warm":
        call()  # the first call's memory, freed, serves the second
    start = time.perf_counter()
    labels = call()
    seconds = time.perf_counter() - start
    if kind != "cc3d-warm":
        np.save(out, labels)
    with open(out + ".seconds", "w") as handle:
        handle.write(f"{seconds}\n")


def ours_warm(src, out, jobs):
    """Subprocess body: our `label` twice in one process, the second run timed (`out`.seconds):
    our work without the interpreter's start-up and imports (0.7-0.9 s), like cc3d's call."""
    from neurostation.cli import main

    argv = ["label", src, "--jobs", jobs, "-o"]
    main(argv + [out + ".first"])
    start = time.perf_counter()
    main(argv + [out])
    with open(out + ".seconds", "w") as handle:
        handle.write(f"{time.perf_counter() - start}\n")


def read_ours(path):
    """Our precomputed output at full resolution as ZYX."""
    from neurostation.io.precomputed import open_volume

    return np.asarray(open_volume(f"file://{path}")[:, :, :])[..., 0].transpose(2, 1, 0)


def same_partition(a, b):
    if not np.array_equal(a == 0, b == 0):
        return False
    pairs = np.unique(np.stack([a[a > 0].astype(np.int64), b[b > 0].astype(np.int64)]), axis=1)
    return len(pairs[0]) == len(np.unique(pairs[0])) == len(np.unique(pairs[1]))


def call_seconds(out):
    with open(out + ".seconds") as handle:
        return float(handle.read())


def run_sizes(work, src, large):
    """Rows (name, wall, peak MiB, CPU) of cc3d (and at 1x skimage) and ours with 1 and 2 jobs,
    at 1x and (with `large`) 8x; our outputs and the references' label files by size and kind."""
    sizes = [("1x", src)]
    if large:
        big = os.path.join(work, "mask8.tif")
        write_mask(big, tifffile.imread(src), tiles=2)
        sizes.append(("8x", big))
    rows, outputs = [], {}
    for size, path in sizes:
        for kind in ("cc3d", "skimage") if size == "1x" else ("cc3d",):
            out = os.path.join(work, f"{kind}{size}.npy")
            run = measure_run([PYTHON, __file__, "--reference", kind, path, out])
            rows.append((size, f"{kind} in memory (read, label, save)", *run))
            seconds = call_seconds(out)
            rows.append((size, f"{kind} in memory (the labelling call alone)", seconds, 0, seconds))
            outputs[size, kind] = out
            if kind == "cc3d":
                warm = out + ".warm"
                measure_run([PYTHON, __file__, "--reference", "cc3d-warm", path, warm])
                rows.append((size, "cc3d   the same call again, memory warm", call_seconds(warm),
                             0, call_seconds(warm)))
        for jobs in (1, 2):
            out = os.path.join(work, f"ours{size}-{jobs}")
            shutil.rmtree(out, ignore_errors=True)
            run = measure_run([PYTHON, "-m", "neurostation.cli", "label", path, "-o", out,
                               "--jobs", str(jobs)])
            rows.append((size, f"ours --jobs {jobs} (precomputed + pyramid)", *run))
            outputs[size, jobs] = out
        if size == "1x":
            warm = os.path.join(work, "ours-warm")
            measure_run([PYTHON, __file__, "--ours-warm", path, warm, "2"])
            rows.append((size, "ours --jobs 2 again in the same process", call_seconds(warm), 0,
                         call_seconds(warm)))
    return rows, outputs


def print_goal(rows):
    """The issue's goal, --jobs 2 at least as fast as cc3d's single labelling call, per size:
    against that call in a fresh process and against the same call repeated (memory warm)."""
    for size in dict.fromkeys(r[0] for r in rows):
        seconds = {r[1]: r[2] for r in rows if r[0] == size}
        ours = seconds["ours --jobs 2 (precomputed + pyramid)"]
        first = seconds["cc3d in memory (the labelling call alone)"]
        warm = seconds["cc3d   the same call again, memory warm"]
        print(f"goal at {size}: ours --jobs 2 / cc3d's call = {ours / first:.2f} "
              f"({'met' if ours <= first else 'missed'}); / the warm call = {ours / warm:.2f}")
        if "ours --jobs 2 again in the same process" in seconds:
            again = seconds["ours --jobs 2 again in the same process"]
            print(f"  without our start-up (the same process again): {again / first:.2f} x "
                  f"cc3d's call, {again / warm:.2f} x the warm call")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", help="folder for the volumes (default: a temporary one)")
    parser.add_argument("--skip-large", action="store_true", help="skip the 8x volume")
    parser.add_argument("--reference", nargs=3, metavar=("KIND", "SRC", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--ours-warm", nargs=3, metavar=("SRC", "OUT", "JOBS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference:
        return reference(*args.reference)
    if args.ours_warm:
        return ours_warm(*args.ours_warm)
    work = args.workdir or tempfile.mkdtemp(prefix="bench-label-")
    os.makedirs(work, exist_ok=True)
    mask = make_mask()
    src = os.path.join(work, "mask.tif")
    write_mask(src, mask)
    del mask
    rows, outputs = run_sizes(work, src, not args.skip_large)
    cc = np.load(outputs["1x", "cc3d"])
    sk = np.load(outputs["1x", "skimage"])
    one, two = read_ours(outputs["1x", 1]), read_ours(outputs["1x", 2])
    checks = {"objects (cc3d)": int(cc.max()),
              "same partition as cc3d": same_partition(one, cc),
              "same partition as skimage": same_partition(one, sk),
              "same labels as cc3d (numbering)": bool(np.array_equal(one, cc)),
              "--jobs 2 equal to --jobs 1": bool(np.array_equal(one, two))}
    del cc, sk, one, two
    if ("8x", 1) in outputs:
        found = int(np.load(outputs["8x", "cc3d"], mmap_mode="r").max())
        ours = [json.load(open(os.path.join(outputs["8x", j], "neurostation.json")))["objects"]
                for j in (1, 2)]
        checks["8x: objects (cc3d; ours --jobs 1, 2)"] = (found, *ours)
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(wall times stretch with load; CPU seconds do not)")
    print(f"{'size':4} {'run':44} {'seconds':>8} {'x cc3d':>7} {'CPU s':>7} {'x cc3d':>7} "
          f"{'peak RSS MiB':>13}")
    for size, name, seconds, peak, cpu in rows:
        base = next(r for r in rows if r[0] == size)  # cc3d's whole run of this size
        print(f"{size:4} {name:44} {seconds:8.2f} {seconds / base[2]:7.2f} {cpu:7.2f} "
              f"{cpu / base[4]:7.2f} {peak or float('nan'):13.0f}")
    for name, value in checks.items():
        print(f"{name}: {value}")
    print_goal(rows)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
