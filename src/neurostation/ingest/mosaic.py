"""Grid-mosaic registration on in-memory tiles: pairwise phase correlation, edge rejection,
a global least-squares solve for tile positions, and feathered blending.

No file I/O here, so the same code serves `neurostation stitch`, the tests and the benchmark.
Positions are (x, y) in pixels, the top-left of each tile; arrays are indexed [y, x].
"""

from dataclasses import dataclass

import numpy as np

# scipy and scikit-image are imported where used: the CLI imports every command at start-up.

UPSAMPLE = 20  # subpixel precision of phase correlation: 1/20 px
# Data-driven score threshold median - K_MAD * sigma (sigma = 1.4826 MAD), clamped so that an
# all-excellent mosaic does not reject a merely good edge and a mostly empty one accepts no noise.
K_MAD, MIN_THRESHOLD, MAX_THRESHOLD = 3.0, 0.25, 0.6
# An overlap whose standard deviation is below this fraction of the mosaic's median is blank.
BLANK_FRACTION = 0.05
# After the solve, an accepted edge that disagrees with the others by more than this is dropped.
MAX_RESIDUAL_PX = 2.0
# Weight of the nominal-offset equation every neighbour pair also gets: it ties tiles (and
# groups of tiles) without reliable edges to their neighbours at nominal offsets, and is too
# weak to move tiles that measured edges hold.
PRIOR_WEIGHT = 1e-3


@dataclass
class Edge:
    """One neighbour pair: b's displacement from a, measured and nominal, and its verdict."""

    a: int
    b: int
    nominal: np.ndarray  # (dx, dy) from the nominal positions
    shift: np.ndarray = None  # (dx, dy) measured
    score: float = 0.0  # normalised cross-correlation of the overlap after the shift
    spread: float = 0.0  # the smaller standard deviation of the two overlap windows
    accepted: bool = False
    reason: str = ""  # why it was rejected


def grid_cell(index, cols, order):
    """(row, col) of the index-th tile of a grid filled row by row, or serpentine ('snake')."""
    row, col = divmod(index, cols)
    if order == "snake" and row % 2:
        col = cols - 1 - col
    return row, col


def grid_positions(rows, cols, tile_shape, overlap):
    """Nominal (x, y) of the tile at each (row, col): steps of (1 - overlap) tile sizes."""
    height, width = tile_shape
    return {(r, c): np.array([c * width * (1 - overlap), r * height * (1 - overlap)])
            for r in range(rows) for c in range(cols)}


def neighbour_pairs(cells):
    """Index pairs (a, b) of horizontal then vertical grid neighbours; cells[i] = (row, col)."""
    where = {cell: i for i, cell in enumerate(cells)}
    pairs = []
    for step in ((0, 1), (1, 0)):
        for i, (r, c) in enumerate(cells):
            j = where.get((r + step[0], c + step[1]))
            if j is not None:
                pairs.append((i, j))
    return pairs


def _window_1d(length, offset, margin):
    """Start of a's and b's windows (each in its own tile) and their common length, along one
    axis, for b nominally at `offset` from a: the nominal overlap widened by `margin` into each
    tile, so that a true offset within +-margin of nominal keeps its whole overlap inside."""
    start_a = max(0, offset - margin)
    start_b = max(0, -offset - margin)
    size = length - max(0, abs(offset) - margin)
    return start_a, start_b, size


def overlap_windows(tile_a, tile_b, nominal, margin):
    """Equal-sized windows of a and b around their nominal overlap; also k0, where b's window
    sits in a's at the nominal offset, and what turns such a window offset into b's
    displacement from a (all (x, y)). None if the tiles do not overlap."""
    starts, sizes = [], []
    for axis, length in enumerate(tile_a.shape[::-1]):  # x, then y
        start_a, start_b, size = _window_1d(length, int(round(nominal[axis])), margin)
        if size <= 0:
            return None
        starts.append((start_a, start_b))
        sizes.append(size)
    (xa, xb), (ya, yb) = starts
    w, h = sizes
    to_shift = np.array([xa - xb, ya - yb], dtype=float)
    return tile_a[ya:ya + h, xa:xa + w], tile_b[yb:yb + h, xb:xb + w], nominal - to_shift, \
        to_shift


def _shared(win_a, win_b, k):
    """The pixels of a's and b's windows that coincide when b's sits at integer (x, y) k."""
    kx, ky = k
    h, w = win_a.shape
    ys, xs = slice(max(0, -ky), min(h, h - ky)), slice(max(0, -kx), min(w, w - kx))
    return win_a[ys.start + ky:ys.stop + ky, xs.start + kx:xs.stop + kx], win_b[ys, xs]


def _ncc(part_a, part_b):
    """Normalised cross-correlation of two equal-shaped arrays; 0 if either is flat."""
    da, db = part_a - part_a.mean(), part_b - part_b.mean()
    denom = np.sqrt((da * da).sum() * (db * db).sum())
    return float((da * db).sum() / denom) if denom > 0 else 0.0


def _search_1d(length, offset, margin):
    """Along one axis: the span of b's window (template) that lies inside a's window for every
    offset within +-margin of `offset`, and the span of a's window it can move over."""
    t0, t1 = max(0, margin - offset), min(length, length - offset - margin)
    return t0, t1, t0 + offset - margin, t1 + offset + margin


def _tukey(n, alpha=0.5):
    """Tukey window: flat in the middle, cosine tapers over alpha/2 of each end."""
    edge = np.minimum(np.arange(n), np.arange(n)[::-1]) / max(alpha * (n - 1) / 2, 1e-9)
    return 0.5 * (1 - np.cos(np.pi * np.minimum(edge, 1.0)))


def ncc_map(search, template):
    """Normalised cross-correlation of `template` at every position fully inside `search`
    (as skimage.feature.match_template, without pulling in scipy.signal): FFT correlation
    over the search's local sums (cumulative-sum boxes); 0 where the search is flat."""
    from scipy import fft

    th, tw = template.shape
    t = template - template.mean()
    size = [fft.next_fast_len(n, real=True) for n in search.shape]
    corr = fft.irfft2(fft.rfft2(search, size) * np.conj(fft.rfft2(t, size)), size)
    out_h, out_w = search.shape[0] - th + 1, search.shape[1] - tw + 1
    corr = corr[:out_h, :out_w]

    def box(a):  # sums of a over every template-sized box
        c = np.pad(a, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
        return c[th:, tw:] - c[:-th, tw:] - c[th:, :-tw] + c[:-th, :-tw]

    shifted = search - search.mean()  # keeps the box sums well conditioned
    variance = box(shifted ** 2) - box(shifted) ** 2 / (th * tw)
    denom = np.sqrt(np.clip(variance, 0, None) * (t * t).sum())
    flat = denom <= 1e-9 * max(float(denom.max()), 1e-300)
    return np.where(flat, 0.0, corr / np.where(flat, 1.0, denom))


def register_windows(task):
    """Measure one pair from its windows (a pool worker; task = (key, win_a, win_b, k0,
    margin); the key comes back first, as results may come back in any order).

    The integer offset is the best normalised cross-correlation (robust to noise and smooth
    content) within +-margin of the nominal k0; skimage's upsampled-DFT correlation of the
    overlap at that offset adds the subpixel part (tapered, so the crop's borders do not pull
    it to whole pixels; unnormalised, which is steadier than phase normalisation in noise).
    Returns (key, offset (x, y) of b's window in a's, score = NCC of the overlap, smaller
    window standard deviation, best match at the search limit).
    """
    from skimage.registration import phase_cross_correlation

    key, win_a, win_b, k0, margin = task
    # windows may be lazy (regions of tiles on disk): reading them here keeps the pool's tasks small
    win_a, win_b = np.asarray(win_a, dtype=np.float64), np.asarray(win_b, dtype=np.float64)
    spread = float(min(win_a.std(), win_b.std()))
    nominal = np.rint(k0).astype(int)
    (tx0, tx1, sx0, sx1), (ty0, ty1, sy0, sy1) = (
        _search_1d(n, int(o), margin) for n, o in zip(win_a.shape[::-1], nominal))
    template = win_b[ty0:ty1, tx0:tx1]
    if spread == 0 or tx1 - tx0 < 2 or ty1 - ty0 < 2 or template.std() == 0:
        return key, np.asarray(k0, float), 0.0, spread, False
    ncc = ncc_map(win_a[sy0:sy1, sx0:sx1], template)
    jy, jx = np.unravel_index(np.argmax(ncc), ncc.shape)
    at_limit = margin > 0 and (min(jx, jy) == 0 or max(jx, jy) == 2 * margin)
    k = nominal + np.array([jx, jy]) - margin
    part_a, part_b = _shared(win_a, win_b, k)
    taper = np.outer(_tukey(part_a.shape[0]), _tukey(part_a.shape[1]))
    (ry, rx), _, _ = phase_cross_correlation((part_a - part_a.mean()) * taper,
                                             (part_b - part_b.mean()) * taper,
                                             upsample_factor=UPSAMPLE, normalization=None)
    fine = np.array([rx, ry]) if max(abs(rx), abs(ry)) <= 1 else np.zeros(2)
    return key, k + fine, _ncc(part_a, part_b), spread, at_limit


def overlap_width(tile_shape, nominal):
    """Width of the nominal overlap of two tiles across their seam, in pixels."""
    return min(tile_shape[1] - abs(nominal[0]), tile_shape[0] - abs(nominal[1]))


def register_pairs(tiles, pairs, nominal, max_shift=None, mapper=map):
    """Measure every pair (a, b) of tile indices; `nominal` holds each tile's nominal (x, y).
    Tiles are arrays, or lazy stand-ins with `.shape` whose slices turn into arrays on
    np.asarray (then only the overlap windows are ever read).
    The search reaches max_shift px from nominal (default: half the overlap width; at most
    3/4 of it, so that a quarter of the overlap always remains to compare). `mapper(func,
    tasks)` runs the registrations (in a pool, say) and may return results in any order.
    Returns Edge objects."""
    edges, tasks, to_shifts = [], [], {}
    for a, b in pairs:
        edge = Edge(a, b, np.asarray(nominal[b], float) - np.asarray(nominal[a], float))
        width = overlap_width(tiles[a].shape, edge.nominal)
        limit = 0.5 * width if max_shift is None else max_shift
        margin = int(np.ceil(min(limit, 0.75 * width)))
        found = overlap_windows(tiles[a], tiles[b], edge.nominal, margin) if width >= 4 else None
        if found is None:
            edge.shift, edge.reason = edge.nominal.copy(), "no overlap"
        else:
            win_a, win_b, k0, to_shifts[len(edges)] = found
            tasks.append((len(edges), win_a, win_b, k0, margin))
        edges.append(edge)
    for key, k, score, spread, at_limit in mapper(register_windows, tasks):
        edge = edges[key]
        edge.shift, edge.score, edge.spread = k + to_shifts[key], score, spread
        edge.reason = "best match at the search limit" if at_limit else ""
    return edges


def score_threshold(scores):
    """median - K_MAD robust sigmas of the scores, clamped to [MIN_THRESHOLD, MAX_THRESHOLD]."""
    if not len(scores):
        return MIN_THRESHOLD
    med = float(np.median(scores))
    sigma = 1.4826 * float(np.median(np.abs(np.asarray(scores) - med)))
    return float(np.clip(med - K_MAD * sigma, MIN_THRESHOLD, MAX_THRESHOLD))


def judge_edges(edges, min_score=None):
    """Accept or reject each measured edge: blank overlaps, then scores under the threshold
    (data-driven unless min_score is given). Edges already rejected keep their reason."""
    spreads = [e.spread for e in edges if not e.reason]
    blank = BLANK_FRACTION * float(np.median(spreads)) if spreads else 0.0
    for e in edges:
        if e.reason:
            continue
        if e.spread <= blank or e.spread == 0:
            e.reason = "blank overlap"
    live = [e.score for e in edges if not e.reason]
    threshold = score_threshold(live) if min_score is None else min_score
    for e in edges:
        if not e.reason and e.score < threshold:
            e.reason = f"score under {threshold:.2f}"
        e.accepted = not e.reason
    return threshold


def _solve(n, edges, nominal):
    """Least squares over all edges (accepted ones weighted by score, every pair also by
    PRIOR_WEIGHT at its nominal offset) with tile 0 fixed at its nominal position."""
    from scipy import sparse
    from scipy.sparse.linalg import spsolve

    rows, cols, vals, rhs = [], [], [], []
    for e in edges:
        equations = [(PRIOR_WEIGHT, e.nominal)]
        if e.accepted:
            equations.append((max(e.score, 1e-3), e.shift))
        for weight, d in equations:
            r, s = len(rhs), np.sqrt(weight)
            rows += [r, r]
            cols += [e.b, e.a]
            vals += [s, -s]
            rhs.append(s * np.asarray(d, float))
    if not rhs:
        return np.array(nominal[:1], float)
    design = sparse.csr_matrix((vals, (rows, cols)), shape=(len(rhs), n))
    rhs = np.array(rhs) - design[:, [0]].toarray() * nominal[0]  # tile 0 known
    free = design[:, 1:]
    normal = (free.T @ free).tocsc()
    solved = spsolve(normal, free.T @ rhs).reshape(n - 1, 2)
    return np.vstack([nominal[0], solved])


def solve_positions(n, edges, nominal):
    """Tile positions (n, 2) from the accepted edges, dropping one at a time the edge the
    others contradict by more than MAX_RESIDUAL_PX; shifted so the smallest x and y are 0."""
    nominal = np.asarray(nominal, float)
    while True:
        positions = _solve(n, edges, nominal)
        live = [e for e in edges if e.accepted]
        if not live:
            break
        residual = [np.abs(positions[e.b] - positions[e.a] - e.shift).max() for e in live]
        worst = int(np.argmax(residual))
        if residual[worst] <= MAX_RESIDUAL_PX:
            break
        live[worst].accepted, live[worst].reason = False, "inconsistent with other edges"
    return positions - positions.min(axis=0)


def canvas_shape(positions, tile_shape):
    """(height, width) holding every tile at its (x, y) position."""
    corner = np.ceil(np.max(positions, axis=0) - 1e-6).astype(int)
    return int(corner[1] + tile_shape[0]), int(corner[0] + tile_shape[1])


def _ramp(length, frac):
    """Feathering weight along one axis of a tile drawn at fractional offset `frac`: distance
    to the tile's nearest edge, 0 outside it (length + 1 samples)."""
    u = np.arange(length + 1) - frac
    return np.clip(np.minimum(u + 0.5, length - 0.5 - u), 0, None)


def footprint(position, tile_shape):
    """Where blending draws a tile at subpixel (x, y): the canvas pixel (ix, iy) of its padded
    top-left, the fractional offsets (fx, fy) and the drawn extent (h + 1, w + 1)."""
    x, y = position
    ix, iy = int(np.floor(x + 1e-6)), int(np.floor(y + 1e-6))
    return ix, iy, max(x - ix, 0.0), max(y - iy, 0.0), tile_shape[0] + 1, tile_shape[1] + 1


def overlapping(positions, tile_shape, origin, shape):
    """Indices of the tiles whose drawn footprint meets the region of `shape` at (y, x) `origin`."""
    (oy, ox), (height, width) = origin, shape
    found = []
    for i, position in enumerate(positions):
        ix, iy, _, _, h, w = footprint(position, tile_shape)
        if iy < oy + height and iy + h > oy and ix < ox + width and ix + w > ox:
            found.append(i)
    return found


def blend(tiles, positions, shape, dtype, origin=(0, 0)):
    """Feathered (distance-weighted) blend of tiles placed at subpixel (x, y) positions,
    accumulated in floating point and rounded back to `dtype`, over the region of `shape`
    whose top-left is canvas pixel (y, x) `origin` (default: the canvas from its corner).
    Each pixel sums the same terms in the same order whatever the region, so a canvas blended
    region by region equals the whole canvas blended at once, bit for bit. `tiles` may be a
    generator (one tile in memory at a time)."""
    from scipy import ndimage

    dtype = np.dtype(dtype)
    exact = np.float64 if dtype.itemsize > 2 else np.float32  # float32 holds 16-bit values
    total = np.zeros(shape, exact)
    weight = np.zeros(shape, exact)
    oy, ox = origin
    for tile, position in zip(tiles, positions):
        ix, iy, fx, fy, _, _ = footprint(position, tile.shape)
        h, w = tile.shape
        y0, y1 = max(iy, oy), min(iy + h + 1, oy + shape[0])
        x0, x1 = max(ix, ox), min(ix + w + 1, ox + shape[1])
        if y0 >= y1 or x0 >= x1:
            continue
        padded = np.pad(tile.astype(exact), ((0, 1), (0, 1)), mode="edge")
        if fx or fy:
            padded = ndimage.shift(padded, (fy, fx), order=3, mode="nearest")
        ramp = np.outer(_ramp(h, fy), _ramp(w, fx)).astype(exact)
        part = (slice(y0 - iy, y1 - iy), slice(x0 - ix, x1 - ix))
        region = (slice(y0 - oy, y1 - oy), slice(x0 - ox, x1 - ox))
        total[region] += padded[part] * ramp[part]
        weight[region] += ramp[part]
    np.divide(total, weight, out=total, where=weight > 0)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        total = np.clip(np.rint(total), info.min, info.max)
    return total.astype(dtype)
