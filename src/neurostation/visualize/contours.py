"""Label contours over a grey picture: pixels where the label changes, in a colour per label."""

import numpy as np

# Distinct colours (matplotlib's tab10 without its grey), cycled by label value.
COLOURS = np.array([(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
                    (148, 103, 189), (140, 86, 75), (227, 119, 194), (188, 189, 34),
                    (23, 190, 207)], np.uint8)


def boundaries(labels):
    """True on labelled pixels with a 4-neighbour of another label."""
    labels = np.asarray(labels)
    padded = np.pad(labels, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    edge = np.zeros(labels.shape, bool)
    for shifted in (padded[:-2, 1:-1], padded[2:, 1:-1], padded[1:-1, :-2], padded[1:-1, 2:]):
        edge |= shifted != centre
    return edge & (labels != 0)


def colour_of(labels):
    """The RGB colour of each label value (0 gets a colour too; callers mask it out)."""
    return COLOURS[np.asarray(labels, np.uint64) % len(COLOURS)]


def overlay(grey_image, labels=None):
    """An RGB picture: the grey image, with label contours painted on it when labels are given."""
    rgb = np.repeat(np.asarray(grey_image, np.uint8)[..., None], 3, axis=2)
    if labels is not None:
        edge = boundaries(labels)
        rgb[edge] = colour_of(labels[edge])
    return rgb
