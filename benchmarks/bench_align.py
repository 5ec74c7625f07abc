"""Benchmark `neurostation align` against the naive anchor, in one run.

Anchor: scikit-image's `phase_cross_correlation` (upsample_factor 20) of consecutive whole
sections, translation only (no rotation), shifts chained from the first section.
Ours: `rigid.register` of consecutive sections and `align.chain`, as the command runs them.
Both then resample every section once with the same `rigid.apply`.

Stacks are cut from real images shipped with scikit-image: each section is the picture
moved by a known random rigid motion (rotation within +-5 degrees, shift within +-10 px),
its centre kept (no empty corners), optionally with Gaussian noise. Accuracy, relative to
the first section: RMS error of the shift (dx, dy, pixels, about the centre), of the angle
(degrees), and of where the section's pixels land (px field: RMS over the whole section,
rotation and shift together). Speed is sections per second of estimation plus resampling,
in CPU time (steadier than wall time on a shared machine), single process, single-threaded
BLAS, files not included.

Run: .venv/bin/python benchmarks/bench_align.py   (about a minute on 2 cores)
"""

import os
import time

# Single-threaded BLAS for both: on a shared machine threaded BLAS makes timings erratic.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402
from skimage import color, data  # noqa: E402
from skimage.registration import phase_cross_correlation  # noqa: E402

from neurostation.ingest import align, rigid  # noqa: E402

MAX_ANGLE, MAX_SHIFT = 5.0, 10.0
CASES = [  # image, sections, noise sigma
    ("camera", 8, 0),
    ("camera", 8, 15),
    ("coins", 8, 5),
    ("moon", 8, 5),
    ("cell", 6, 5),
    ("retina", 5, 5),
]


def load(name):
    image = getattr(data, name)()
    if image.ndim == 3:
        image = (color.rgb2gray(image) * 255)[300:1100, 300:1100]  # retina: the vessels
    return image.astype(np.float32)


def make_stack(image, n, noise, rng):
    """Sections (uint8) of the picture under random motions, and the motions' matrices in the
    sections' pixel coordinates."""
    margin = int(np.ceil(MAX_SHIFT + 0.1 * max(image.shape))) + 2
    c = rigid.centre(image.shape)
    to_crop = np.eye(3)
    to_crop[:2, 2] = -margin
    motions, sections = [], []
    for _ in range(n):
        m = rigid.matrix(rng.uniform(-MAX_ANGLE, MAX_ANGLE),
                         *rng.uniform(-MAX_SHIFT, MAX_SHIFT, 2), c)
        moved = rigid.apply(image, m)[margin:-margin, margin:-margin]
        moved = moved + rng.normal(0, noise, moved.shape) if noise else moved
        sections.append(np.clip(np.rint(moved), 0, 255).astype(np.uint8))
        motions.append(to_crop @ m @ np.linalg.inv(to_crop))
    return sections, motions


def ours(sections):
    mask = np.ones(sections[0].shape, bool)
    pairwise = {z: rigid.register(sections[z - 1].astype(np.float32), mask,
                                  sections[z].astype(np.float32), mask, 30.0)[0]
                for z in range(1, len(sections))}
    return align.chain(pairwise, 0)


def anchor(sections):
    out = [np.eye(3)]
    for z in range(1, len(sections)):
        (dy, dx), _, _ = phase_cross_correlation(sections[z - 1].astype(float),
                                                 sections[z].astype(float), upsample_factor=20)
        step = np.eye(3)
        step[:2, 2] = dx, dy
        out.append(out[-1] @ step)
    return out


def errors(found, motions, shape):
    """RMS shift error (px), angle error (degrees), and field error (px) over the section."""
    c = rigid.centre(shape)
    ys, xs = np.mgrid[0:shape[0]:8, 0:shape[1]:8]
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    shift, angle, field = [], [], []
    for m, motion in zip(found[1:], motions[1:]):
        truth = motions[0] @ np.linalg.inv(motion)
        a, b = np.array(rigid.params(m, c)), np.array(rigid.params(truth, c))
        angle.append((a[0] - b[0] + 180) % 360 - 180)
        shift.append(np.hypot(*(a[1:] - b[1:])))
        field.append(np.sqrt(((m @ points - truth @ points)[:2] ** 2).sum(axis=0).mean()))
    return [float(np.sqrt(np.mean(np.square(v)))) for v in (shift, angle, field)]


def timed(method, sections):
    start = time.process_time()
    found = method(sections)
    for image, m in zip(sections, found):
        rigid.apply(image, m)
    return found, time.process_time() - start


def main():
    rng = np.random.default_rng(0)
    images = {}
    ours(make_stack(load("camera")[:128, :128], 2, 0, rng)[0])  # warm up imports
    header = (f"{'image':8} {'size':>9} {'n':>2} {'noise':>5} | {'anchor px':>9} {'ours px':>8} "
              f"{'ratio':>7} | {'anchor deg':>10} {'ours deg':>8} {'ratio':>7} | "
              f"{'anchor field':>12} {'ours field':>10} | {'anchor s/s':>10} {'ours s/s':>8} "
              f"{'ratio':>6}")
    print(header)
    print("-" * len(header))
    worst = np.zeros(2)
    totals = {"anchor": [], "ours": [], "anchor_t": 0.0, "ours_t": 0.0, "n": 0}
    for name, n, noise in CASES:
        image = images.setdefault(name, load(name))
        sections, motions = make_stack(image, n, noise, rng)
        result = {}
        for label, method in (("anchor", anchor), ("ours", ours)):
            found, took = timed(method, sections)
            result[label] = errors(found, motions, sections[0].shape) + [n / took]
            totals[label].append(result[label][:3])
            totals[label + "_t"] += took
        totals["n"] += n
        a, o = result["anchor"], result["ours"]
        worst = np.maximum(worst, o[:2])
        size = "x".join(map(str, sections[0].shape[::-1]))
        print(f"{name:8} {size:>9} {n:>2} {noise:>5} | {a[0]:>9.3f} {o[0]:>8.3f} "
              f"{a[0] / o[0]:>6.0f}x | {a[1]:>10.3f} {o[1]:>8.4f} {a[1] / o[1]:>6.0f}x | "
              f"{a[2]:>12.2f} {o[2]:>10.3f} | {a[3]:>10.1f} {o[3]:>8.2f} {o[3] / a[3]:>5.2f}x")
    print("-" * len(header))
    a_all = np.sqrt(np.mean(np.square(totals["anchor"]), axis=0))
    o_all = np.sqrt(np.mean(np.square(totals["ours"]), axis=0))
    a_sps, o_sps = totals["n"] / totals["anchor_t"], totals["n"] / totals["ours_t"]
    print(f"{'all':8} {'':>9} {'':>2} {'':>5} | {a_all[0]:>9.3f} {o_all[0]:>8.3f} "
          f"{a_all[0] / o_all[0]:>6.0f}x | {a_all[1]:>10.3f} {o_all[1]:>8.4f} "
          f"{a_all[1] / o_all[1]:>6.0f}x | {a_all[2]:>12.2f} {o_all[2]:>10.3f} | "
          f"{a_sps:>10.1f} {o_sps:>8.2f} {o_sps / a_sps:>5.2f}x")
    print("\npx, deg, field = RMS errors against the known motions (see the top of this file); "
          "ratio = anchor / ours for errors, ours / anchor for sections per second (s/s).")
    print(f"Ours meets the goal (every case <= 0.5 px and <= 0.2 degrees RMS): "
          f"{'yes' if worst[0] <= 0.5 and worst[1] <= 0.2 else 'NO'} (worst case "
          f"{worst[0]:.3f} px, {worst[1]:.4f} degrees)")


if __name__ == "__main__":
    main()
