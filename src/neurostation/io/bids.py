"""BIDS-style file names (`sub-01_ses-2_task-rest_bold.nii.gz`): the entities they carry."""

import re

_ENTITY = re.compile(r"(?:^|_)([a-zA-Z]+)-([a-zA-Z0-9]+)(?=_|\.|$)")
_SUFFIX_EXT = re.compile(r"(\.[A-Za-z0-9]+)+$")


def bids_entities(name):
    """{'sub': '01', 'ses': '2', 'task': 'rest', ...} from a file or element name; empty when
    the name carries no BIDS entity. Only the base name counts, not folders."""
    base = re.split(r"[\\/]", str(name))[-1]
    base = _SUFFIX_EXT.sub("", base)
    return {key: value for key, value in _ENTITY.findall(base)}


def sample_label(name):
    """A short label for a sample: 'sub-01_ses-2' (run and task kept when present), else the
    name without its extensions."""
    ents = bids_entities(name)
    keys = [k for k in ("sub", "ses", "task", "run") if k in ents]
    if "sub" in ents:
        return "_".join(f"{k}-{ents[k]}" for k in keys)
    base = re.split(r"[\\/]", str(name))[-1]
    return _SUFFIX_EXT.sub("", base) or base
