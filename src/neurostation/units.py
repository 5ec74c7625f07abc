"""Voxel sizes and their units: parsing `X,Y,Z` options and object sizes, converting between
units."""

import math
import re

from .errors import UserError

# Length units we accept, in nanometres. "um" is the ASCII spelling of micrometre.
UNIT_NM = {"nm": 1.0, "um": 1e3, "mm": 1e6}
_ALIASES = {"µm": "um", "μm": "um", "micron": "um", "micrometer": "um", "micrometre": "um",
            "nanometer": "nm", "nanometre": "nm", "millimeter": "mm", "millimetre": "mm"}
# A positive decimal number, as a regex group; --min-size: that many voxels, or a volume with a
# cubed length unit (10um3, 0.5 µm³).
NUMBER = r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*"
_SIZE = re.compile(NUMBER + r"(?:([a-zµμ]+)(?:3|³|\^3))?\s*")


def normalize_unit(unit):
    """Return the canonical spelling (nm, um, mm) of a length unit, or raise UserError."""
    key = _ALIASES.get(unit, unit)
    if key not in UNIT_NM:
        raise UserError(f"unknown voxel unit {unit!r}: use one of nm, um, mm")
    return key


def convert(values, unit_from, unit_to):
    """Convert lengths between units (nm, um, mm)."""
    factor = UNIT_NM[normalize_unit(unit_from)] / UNIT_NM[normalize_unit(unit_to)]
    return tuple(float(v) * factor for v in values)


def parse_xyz(text, what="--voxel-size", positive=True):
    """Parse `X,Y,Z` into three floats, with a clear error for anything else."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3:
        raise UserError(f"{what} must be three numbers X,Y,Z (e.g. 4,4,40), got {text!r}")
    if positive and not all(v > 0 for v in values):
        raise UserError(f"{what} values must be positive, got {text!r}")
    return values


def parse_min_size(text):
    """--min-size -> ('voxels', n) or ('nm3', volume)."""
    match = _SIZE.fullmatch(str(text))
    if not match or float(match.group(1)) <= 0:
        raise UserError(f"--min-size must be a positive number of voxels (e.g. 50) or a volume "
                        f"such as 10um3, got {text!r}")
    value, unit = float(match.group(1)), match.group(2)
    if unit is None:
        return "voxels", value
    try:
        unit = normalize_unit(unit)
    except UserError:
        raise UserError(f"--min-size unit must be nm3, um3 or mm3, got {text!r}") from None
    return "nm3", value * UNIT_NM[unit] ** 3


def min_voxels(size, voxel_nm, voxel_known):
    """The smallest object kept, in voxels (a volume rounds up to whole voxels)."""
    if size is None:
        return 0
    kind, value = size
    if kind == "voxels":
        return math.ceil(value)
    if not voxel_known:
        raise UserError("--min-size in a unit needs the voxel size: the input records none; "
                        "give --voxel-size and --voxel-unit, or --min-size in voxels")
    return math.ceil(value / math.prod(voxel_nm) * (1 - 1e-12))
