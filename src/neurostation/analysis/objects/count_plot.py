"""The picture of `neurostation count`: objects per sample as bars (the count written on each)
above the object volumes per sample as box plots on a log scale, samples in the table's order;
an RGB PNG of the QC picture's size (matplotlib Agg)."""

import numpy as np

from ...visualize.figure import HEIGHT, SIDE, WIDTH, add_caption, new_figure, save_rgb

BAR_COLOUR = "#1f77b4"
BOX_COLOUR = "#ff7f0e"
LEFT, RIGHT = SIDE + 70, SIDE  # px around the axes (room for the y labels)


def plot_counts(path, table, volumes, unit, min_size=None):
    """Draw `table` (sample, objects) and `volumes` (object volumes in `unit`³ per sample)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator  # only when a plot is drawn

    fig, canvas = new_figure()
    width = 1 - (LEFT + RIGHT) / WIDTH
    bars = fig.add_axes([LEFT / WIDTH, 1 - 380 / HEIGHT, width, 330 / HEIGHT])
    boxes = fig.add_axes([LEFT / WIDTH, 1 - 740 / HEIGHT, width, 300 / HEIGHT], sharex=bars)
    x = np.arange(len(table))
    counts = table["objects"].to_numpy()
    drawn = bars.bar(x, counts, width=0.6, color=BAR_COLOUR)
    bars.bar_label(drawn, fontsize=8, padding=2)
    bars.set_ylim(0, max(1, counts.max()) * 1.12)
    bars.yaxis.set_major_locator(MaxNLocator(integer=True))
    bars.set_ylabel("objects")
    title = "objects per sample" + (f" (at least {min_size})" if min_size else "")
    bars.set_title(title, fontsize=10)
    bars.tick_params(labelbottom=False)
    filled = [i for i, v in enumerate(volumes) if len(v)]
    if filled:
        art = boxes.boxplot([volumes[i] for i in filled], positions=filled, widths=0.6,
                            patch_artist=True, manage_ticks=False,
                            medianprops={"color": "black"})
        for patch in art["boxes"]:
            patch.set_facecolor(BOX_COLOUR)
        boxes.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        boxes.yaxis.set_major_formatter(plain)
        every = np.concatenate([volumes[i] for i in filled])
        few = every.max() < 10 * every.min()  # less than a decade: label 2, 3, 5 x 10^n too
        boxes.yaxis.set_minor_formatter(FuncFormatter(
            lambda v, _: f"{v:g}" if few and f"{v:.0e}"[0] in "235" else ""))
    boxes.set_ylabel(f"object volume ({unit.replace('um', 'µm')}³, log)")
    boxes.set_xticks(x, table["sample"], rotation=30 if len(x) > 4 else 0, ha="right"
                     if len(x) > 4 else "center", fontsize=8)
    boxes.set_xlim(-0.6, len(x) - 0.4)
    boxes.set_xlabel("sample")
    total = int(counts.sum())
    add_caption(fig, f"{len(x)} sample(s), {total} objects in all. Boxes: quartiles of the object "
                "volumes, whiskers 1.5 x the interquartile range, circles beyond.", WIDTH, HEIGHT)
    save_rgb(canvas, path)
