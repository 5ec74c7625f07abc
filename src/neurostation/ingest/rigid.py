"""Rigid (rotation + translation) registration of two images on one canvas, for `align`.

Convention, in pixel coordinates (x right, y down) about the canvas centre c: the transform
(angle, dx, dy) moves a point p of a section to R(angle) (p - c) + c + (dx, dy), where
R(angle) = [[cos, sin], [-sin, cos]] turns the picture counter-clockwise as displayed for a
positive angle (as skimage.transform.rotate does). Transforms are 3x3 matrices on (x, y, 1).

Registration is coarse to fine: the rotation from the angular correlation of the Fourier
magnitudes (Fourier-Mellin, translation-free), the shift by phase correlation, both on a
reduced image; then Gauss-Newton on the intensities (inverse compositional, gain and offset
matched in the overlap) from coarse to full resolution (or FINE_SIDE pixels), for subpixel
and sub-0.1 degree accuracy. The Fourier step gives the capture range (any rotation, shifts
up to about a quarter of the section), the refinement the accuracy.
"""

import warnings

import numpy as np
from scipy import ndimage
from skimage.registration import phase_cross_correlation
from skimage.transform import AffineTransform, downscale_local_mean, warp

COARSE_SIDE = 256  # the rotation search runs on images about this size
FINE_SIDE = 2048  # the finest refinement runs on images at most this size (0.1 px there)
FINE_STEP = 0.005  # Gauss-Newton stops when an update moves no pixel by more than this


def centre(shape):
    """The canvas centre (x, y) of an image of shape (rows, cols)."""
    return np.array([(shape[1] - 1) / 2.0, (shape[0] - 1) / 2.0])


def matrix(angle_deg, dx, dy, c):
    """The 3x3 matrix of the transform (angle, dx, dy) about centre c (see the module doc)."""
    t = np.radians(angle_deg)
    rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    out = np.eye(3)
    out[:2, :2] = rot
    out[:2, 2] = c - rot @ c + (dx, dy)
    return out


def params(m, c):
    """(angle_deg, dx, dy) of a rigid 3x3 matrix about centre c: the inverse of `matrix`."""
    angle = np.degrees(np.arctan2(m[0, 1], m[0, 0]))
    dx, dy = m[:2, 2] - (c - m[:2, :2] @ c)
    return float(angle), float(dx), float(dy)


def apply(image, m):
    """`image` (2D, or 2D with samples last) moved by matrix m onto the same canvas, bilinear,
    same dtype; what comes from outside the image is 0. One sample plane at a time in float."""
    if image.ndim == 3:
        out = np.empty_like(image)
        for s in range(image.shape[2]):
            out[..., s] = apply(image[..., s], m)
        return out
    moved = warp(image, AffineTransform(matrix=np.linalg.inv(m)), order=1, mode="constant",
                 cval=0, preserve_range=True)
    if image.dtype.kind in "ui":
        info = np.iinfo(image.dtype)
        moved = np.clip(np.rint(moved), info.min, info.max)
    return moved.astype(image.dtype, copy=False)


def _shrink(factor):
    """Full-resolution pixel coordinates -> those of the image reduced by `factor`
    (block-mean pixel k covers pixels fk .. fk+f-1)."""
    out = np.diag([1.0 / factor, 1.0 / factor, 1.0])
    out[:2, 2] = -(factor - 1) / (2.0 * factor)
    return out


def _to_level(m, factor):
    """Matrix m (on the full canvas) on the canvas reduced by `factor`."""
    return _shrink(factor) @ m @ np.linalg.inv(_shrink(factor))


def _from_level(m, factor):
    """Matrix m (on the canvas reduced by `factor`) on the full canvas."""
    return np.linalg.inv(_shrink(factor)) @ m @ _shrink(factor)


def _reduce(image, mask, factor):
    if factor == 1:
        return image, mask
    small = downscale_local_mean(image * mask, (factor, factor))
    cover = downscale_local_mean(mask.astype(np.float32), (factor, factor))
    ok = cover > 0.999
    return np.where(ok, small, 0).astype(np.float32), ok


def _bbox_window(mask):
    """A Hann window over the bounding box of the mask (0 elsewhere)."""
    out = np.zeros(mask.shape, np.float32)
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if len(rows) < 2 or len(cols) < 2:
        return out
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    out[r0:r1, c0:c1] = np.outer(np.hanning(r1 - r0), np.hanning(c1 - c0))
    return out * mask


def _tapered(image, mask):
    """Zero-mean inside the mask, zero outside, faded to zero at the edges of its box."""
    values = image[mask]
    if values.size == 0:
        return np.zeros(image.shape, np.float32)
    return ((image - values.mean()) * _bbox_window(mask)).astype(np.float32)


def _square(image):
    """Zero-pad to a square (so the Fourier grid turns with the picture)."""
    n = max(image.shape)
    out = np.zeros((n, n), image.dtype)
    r0, c0 = (n - image.shape[0]) // 2, (n - image.shape[1]) // 2
    out[r0:r0 + image.shape[0], c0:c0 + image.shape[1]] = image
    return out


def _polar_spectrum(tapered, n_angles):
    """Log Fourier magnitude sampled on polar rays over 0..180 degrees (row k at angle
    k * 180 / n_angles), mid frequencies only, each radius normalised."""
    spec = np.log1p(np.abs(np.fft.fftshift(np.fft.fft2(_square(tapered)))))
    n = spec.shape[0]
    theta = np.arange(n_angles) * np.pi / n_angles
    radius = np.arange(max(2, n // 32), int(n * 0.4))
    rows = n // 2 + np.sin(theta)[:, None] * radius
    cols = n // 2 + np.cos(theta)[:, None] * radius
    band = ndimage.map_coordinates(spec, [rows, cols], order=1)
    band = band - band.mean(axis=0)
    return band / (band.std(axis=0) + 1e-9)


def rotation_candidates(fixed, fmask, moving, mmask, max_rotation, n_angles=720, peaks=3):
    """Angles (degrees) that may turn `moving` onto `fixed`, best first, within max_rotation.

    The Fourier magnitude ignores translation and turns with the picture; its angular
    correlation gives the rotation modulo 180 degrees, so both readings are returned."""
    a = _polar_spectrum(_tapered(fixed, fmask), n_angles)
    b = _polar_spectrum(_tapered(moving, mmask), n_angles)
    cross = np.fft.fft(a, axis=0) * np.conj(np.fft.fft(b, axis=0))
    corr = np.fft.ifft(cross.sum(axis=1)).real
    step = 180.0 / n_angles
    found, seen = [], 0
    for k in np.argsort(corr)[::-1]:
        left, mid, right = corr[k - 1], corr[k], corr[(k + 1) % n_angles]
        if mid < left or mid < right:
            continue  # not a local maximum
        if seen == peaks:
            break
        seen += 1
        denom = left - 2 * mid + right
        frac = 0.5 * (left - right) / denom if denom else 0.0
        # a[i] ~ b[i - s]: the moving spectrum sits s steps further round
        angle = -(k + frac) * step
        for turn in (0.0, 180.0):
            value = (angle + turn + 180.0) % 360.0 - 180.0
            if abs(value) <= max_rotation + 1e-9:
                found.append(value)
    return found


def _ncc(a, b, mask):
    if mask.sum() < 16:
        return -1.0
    x, y = a[mask] - a[mask].mean(), b[mask] - b[mask].mean()
    den = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / den) if den > 0 else -1.0


def _moved(image, mask, m):
    """Image and validity mask moved by m (float, bilinear)."""
    inv = AffineTransform(matrix=np.linalg.inv(m))
    out = warp(image, inv, order=1, mode="constant", cval=0, preserve_range=True)
    ok = warp(mask.astype(np.float32), inv, order=1, mode="constant", cval=0) > 0.999
    return out, ok


def coarse(fixed, fmask, moving, mmask, max_rotation):
    """(matrix, ncc): the best rotation candidate with its phase-correlation shift."""
    c = centre(fixed.shape)
    tf = _tapered(fixed, fmask)
    best = (np.eye(3), -2.0)
    for angle in rotation_candidates(fixed, fmask, moving, mmask, max_rotation) or [0.0]:
        rot = matrix(angle, 0, 0, c)
        turned, tmask = _moved(moving, mmask, rot)
        with warnings.catch_warnings():  # it warns about its error estimate on flat images
            warnings.simplefilter("ignore")
            shift = phase_cross_correlation(tf, _tapered(turned, tmask), upsample_factor=4)[0]
        m = matrix(angle, shift[1], shift[0], c)
        moved, ok = _moved(moving, mmask, m)
        score = _ncc(fixed, moved, ok & fmask)
        if score > best[1]:
            best = (m, score)
    return best


def refine(fixed, fmask, moving, mmask, m, iterations=40, sigma=1.0):
    """Gauss-Newton (inverse compositional) refinement of matrix m taking moving onto fixed.

    Returns (matrix, ncc of the overlap)."""
    f = ndimage.gaussian_filter(fixed.astype(np.float32), sigma)
    mv = ndimage.gaussian_filter(moving.astype(np.float32), sigma)
    edge = int(np.ceil(2 * sigma)) + 1
    fok = ndimage.binary_erosion(fmask, iterations=edge)
    mok = ndimage.binary_erosion(mmask, iterations=edge)
    gy, gx = np.gradient(f)
    c = centre(f.shape)
    ys, xs = np.mgrid[0:f.shape[0], 0:f.shape[1]].astype(np.float32)
    u, v = xs - c[0], ys - c[1]
    jac = np.stack([gx * v - gy * u, gx, gy])  # d F(delta(q)) / d (angle rad, dx, dy)
    reach = max(np.hypot(u, v).max(), 1.0)
    for _ in range(iterations):
        w, ok = _moved(mv, mok, m)
        ok &= fok
        n = ok.sum()
        if n < 64:
            break
        fw, ww = f[ok], w[ok]
        gain = fw.std() / (ww.std() + 1e-12)
        err = (ww - ww.mean()) * gain + fw.mean() - fw
        j = jac[:, ok]
        step = np.linalg.lstsq(j @ j.T, j @ err, rcond=None)[0]
        delta = matrix(np.degrees(step[0]), step[1], step[2], c)
        m = delta @ m
        if abs(step[0]) * reach < FINE_STEP and np.hypot(step[1], step[2]) < FINE_STEP:
            break
    w, ok = _moved(mv, mok, m)
    return m, _ncc(f, w, ok & fok)


def register(fixed, fmask, moving, mmask, max_rotation=180.0):
    """The rigid matrix taking `moving` onto `fixed` (2D float arrays on one canvas, with
    boolean masks of their valid pixels) and the NCC of the overlap after it (-1 when
    either image is flat: identity then)."""
    if any(image[mask].size < 64 or np.ptp(image[mask]) == 0
           for image, mask in ((fixed, fmask), (moving, mmask))):
        return np.eye(3), -1.0
    levels = max(0, int(np.ceil(np.log2(max(fixed.shape) / COARSE_SIDE))))
    finest = max(0, int(np.ceil(np.log2(max(fixed.shape) / FINE_SIDE))))
    pyramid = {f: _reduce(fixed, fmask, f) + _reduce(moving, mmask, f)
               for f in (2 ** level for level in range(finest, levels + 1))}
    m_small, score = coarse(*pyramid[2 ** levels], max_rotation)
    m = _from_level(m_small, 2 ** levels)
    for level in range(levels, finest - 1, -1):
        f = 2 ** level
        found, found_score = refine(*pyramid[f], _to_level(m, f))
        back = _from_level(found, f)
        if abs(params(back, centre(fixed.shape))[0]) <= max_rotation + 1.0:
            m, score = back, found_score
    return m, score
