"""Model files that are safe to load from another user: a skops archive (no pickle) holding a
dict {format, kind, settings, model}, loaded only when every type in it is on our allow-list.

skops builds objects from a JSON schema and .npy arrays read without pickle; it refuses any
type it does not trust unless the caller names it. We name only the one extra type a random
forest needs, so a file holding anything else is refused before any of its objects is built.
"""

import os
import zipfile

from ..errors import UserError
from .outputs import staged_file

FORMAT = "neurostation-model-1"
# Types a random-forest file holds that skops does not trust by itself (its own defaults
# cover builtins, numpy arrays and scikit-learn estimators): the trees' arrays.
ALLOWED_TYPES = frozenset({"sklearn.tree._tree.Tree"})


def save_model(path, kind, model, settings):
    """Write `model` (a RandomForestClassifier) and its `settings` dict as a skops file."""
    import skops.io

    with staged_file(path) as tmp:
        skops.io.dump({"format": FORMAT, "kind": kind, "settings": settings, "model": model}, tmp)


def load_model(path, kind):
    """(model, settings) of a model file written by save_model for `kind`; anything else —
    not a skops file, a type off the allow-list, another kind of model — is a UserError."""
    import skops.io
    from sklearn.ensemble import RandomForestClassifier

    name = os.path.basename(str(path))
    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
        raise UserError(f"{name} is not a NeuroStation model file (a skops archive): "
                        f"{' '.join(str(exc).split()) or type(exc).__name__}") from None
    refused = sorted(set(untrusted) - ALLOWED_TYPES)
    if refused:
        raise UserError(f"{name} is not safe to load: it holds types outside the allow-list "
                        f"({', '.join(refused)})")
    try:
        content = skops.io.load(path, trusted=list(untrusted))
    except Exception as exc:  # skops raises many kinds on malformed archives
        raise UserError(f"{name} is not a readable model file: "
                        f"{' '.join(str(exc).split()) or type(exc).__name__}") from None
    if (not isinstance(content, dict) or content.get("format") != FORMAT
            or not isinstance(content.get("model"), RandomForestClassifier)
            or not isinstance(content.get("settings"), dict)):
        raise UserError(f"{name} is not a NeuroStation model file")
    if content.get("kind") != kind:
        raise UserError(f"{name} is a model of kind {content.get('kind')!r}; this command "
                        f"takes {kind!r} models")
    return content["model"], content["settings"]
