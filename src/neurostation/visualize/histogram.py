"""Intensity histogram of a whole volume, streamed box by box: a first pass finds the value
range (RunningStats), a second counts values in equal bins over it — the counts equal
numpy.histogram(volume, bins, range) on the whole array, with range (min, max), or for integer
data with no more distinct values than bins one bin per integer, (min - 0.5, max + 0.5)."""

import numpy as np

from ..chunks.pool import run_tasks
from ..errors import UserError
from ..stats import RunningStats
from .figure import HEIGHT, SIDE, WIDTH, add_caption, new_figure, save_rgb
from .project import box_size, region_boxes


class _BoxStats:
    """Value range and sum of one box (picklable)."""

    def __init__(self, source, channel):
        self.source, self.channel = source, channel

    def __call__(self, box):
        stats = RunningStats()
        stats.add(self.source.read(box)[..., self.channel])
        return stats


class _BoxCounts:
    """Counts of one box in the fixed bins (picklable)."""

    def __init__(self, source, channel, bins, value_range):
        self.source, self.channel, self.bins, self.range = source, channel, bins, value_range

    def __call__(self, box):
        return np.histogram(self.source.read(box)[..., self.channel], self.bins, self.range)[0]


def histogram(source, bins, jobs=None, channel=0):
    """(counts, edges, stats dict) of every voxel of `source`, in at most `bins` equal bins."""
    if bins < 1:
        raise UserError(f"--bins must be at least 1, got {bins}")
    boxes = region_boxes((0, 0, 0), source.shape, box_size(source.chunk, source.shape))
    stats = RunningStats()
    for part in run_tasks(_BoxStats(source, channel), boxes, jobs, desc="finding the value range"):
        stats.merge(part)
    facts = stats.as_dict()
    if not np.isfinite([facts["min"], facts["max"]]).all():
        raise UserError(f"{source.name} holds values that are not finite numbers (NaN or "
                        "infinity); no histogram range can be chosen")
    value_range = (float(facts["min"]), float(facts["max"]))
    if source.dtype.kind in "iu" and facts["max"] - facts["min"] + 1 <= bins:
        bins = int(facts["max"] - facts["min"]) + 1
        value_range = (value_range[0] - 0.5, value_range[1] + 0.5)
    counts = np.zeros(bins, np.int64)
    task = _BoxCounts(source, channel, bins, value_range)
    for part in run_tasks(task, boxes, jobs, desc="counting values"):
        counts += part
    edges = np.histogram_bin_edges([], bins, value_range)
    return counts, edges, facts


def histogram_view(source, path, bins, log, jobs, channel):
    """Draw the histogram (log count axis with --log) with a caption of the value statistics."""
    counts, edges, facts = histogram(source, bins, jobs, channel)
    fig, canvas = new_figure()
    ax = fig.add_axes([(SIDE + 60) / WIDTH, 150 / HEIGHT, 1 - (2 * SIDE + 60) / WIDTH,
                       1 - 200 / HEIGHT])
    ax.stairs(counts, edges, fill=True, color="#1f77b4")
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(f"intensity ({source.dtype})")
    ax.set_ylabel("voxels" + (" (log scale)" if log else ""))
    ax.set_title(f"intensity histogram of {source.name}", fontsize=10)
    size = " x ".join(map(str, source.shape))
    add_caption(fig, f"{source.name}: {size} voxels, {int(counts.sum())} counted in "
                f"{len(counts)} bins of width {edges[1] - edges[0]:.4g}; min {facts['min']:.6g}, max "
                f"{facts['max']:.6g}, mean {facts['mean']:.6g}", WIDTH, HEIGHT)
    save_rgb(canvas, path)
