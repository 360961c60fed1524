"""What makes a model file safe to load: the checks every load path runs before deserializing.

A model file is data, not code. These checks hold that line for the safe formats:

- skops: only the types skops itself reports safe, plus :data:`REVIEWED_TYPES` (classes
  reviewed one by one, never functions, never from a testing module), load without
  ``trusted=True``; the archive's declared sizes are checked before anything is extracted;
- ONNX: tensors stored outside the model file (external data) are refused, since their path
  would be resolved on the loading machine (a ``../`` or absolute path reads any file);
- LightGBM and XGBoost files are parsed by native code, which may abort the whole process on a
  malformed file, so a file is first opened in a separate process;
- a model file must be a regular file, not a symbolic link, and a file named inside an MLflow
  model folder must stay inside that folder.
"""

from __future__ import annotations

import importlib
import io
import re
import subprocess
import sys
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from watchkeeper.registry._errors import UnsafeFormatError, UnsupportedFormatError

__all__ = [
    "MAX_EXPANDED_BYTES",
    "REVIEWED_TYPES",
    "check_archive",
    "check_inside",
    "check_native_file",
    "check_onnx",
    "check_regular_file",
    "refused_types",
    "reviewed_types",
]

_TRUST_HINT = "pass trusted=True (--trusted) only if you trust the author of the file"

#: Classes that skops leaves off its own safe list but that scikit-learn's fitted estimators
#: hold, trusted without ``trusted=True``. Each was reviewed: a class (never a function, which
#: skops would call with arguments from the file), whose construction runs only numpy or
#: scikit-learn code on array data. Value: where it comes from.
REVIEWED_TYPES: dict[str, str] = {
    "numpy.dtype": "the dtype of arrays inside every estimator",
    "sklearn.tree._tree.Tree": "the fitted trees of decision trees, forests, gradient boosting",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor": (
        "the fitted trees of HistGradientBoostingClassifier and HistGradientBoostingRegressor"
    ),
    "sklearn.neighbors._kd_tree.KDTree": "the index of nearest-neighbour estimators",
    "sklearn.neighbors._ball_tree.BallTree": "the index of nearest-neighbour estimators",
    "sklearn.metrics._dist_metrics.EuclideanDistance64": (
        "the default distance of nearest-neighbour estimators"
    ),
}

#: Public modules where each reviewed class is also exported, when it is (checked by tests).
PUBLIC_HOMES: dict[str, str] = {
    "numpy.dtype": "numpy",
    "sklearn.neighbors._kd_tree.KDTree": "sklearn.neighbors",
    "sklearn.neighbors._ball_tree.BallTree": "sklearn.neighbors",
}

#: A skops archive whose members would expand to more than this is refused (about 4 GB).
MAX_EXPANDED_BYTES = 4 * 1024**3
#: Members larger than this must not expand more than :data:`_MAX_RATIO` times their
#: compressed size. skops stores members uncompressed by default; numeric arrays compress
#: by a few times, a zip bomb by hundreds.
_RATIO_FLOOR = 16 * 1024**2
_MAX_RATIO = 200
_MAX_MEMBERS = 100_000


def _resolve(name: str) -> Any:
    module, _, attribute = name.rpartition(".")
    return getattr(importlib.import_module(module), attribute)


@lru_cache(maxsize=1)
def reviewed_types() -> frozenset[str]:
    """The names of :data:`REVIEWED_TYPES` that resolve to a class in this environment.

    Only the project's own list is ever imported here, never a name read from a file.

    Examples
    --------
    >>> "sklearn.tree._tree.Tree" in reviewed_types()
    True
    """
    found = set()
    for name in REVIEWED_TYPES:
        try:
            obj = _resolve(name)
        except (ImportError, AttributeError):
            continue  # a library version without it: nothing to trust
        if isinstance(obj, type) and ".test" not in f".{obj.__module__}":
            found.add(name)
    return frozenset(found)


def refused_types(untrusted: list[str], accepted: frozenset[str] = frozenset()) -> list[str]:
    """The names among skops' ``untrusted`` types that neither the review nor ``accepted``
    (types the caller vouched for) cover.

    Examples
    --------
    >>> refused_types(["numpy.dtype", "builtins.exec", "os.system"])
    ['builtins.exec', 'os.system']
    """
    allowed = reviewed_types() | accepted
    return sorted(name for name in set(untrusted) if name not in allowed)


def check_archive(data: bytes, what: str = "the skops file") -> None:
    """Refuse a skops archive that is not a zip file or would expand beyond the limits.

    Python's zip reader never yields more bytes than a member's declared size (it checks the
    CRC at the end), so checking the declared sizes bounds what loading can expand.

    Examples
    --------
    >>> check_archive(b"not a zip")
    Traceback (most recent call last):
    ...
    watchkeeper.registry._errors.UnsupportedFormatError: the skops file is not a skops file ...
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise UnsupportedFormatError(
            f"{what} is not a skops file (not a readable zip archive: {_first_line(exc)}); "
            "save the model with skops.io.dump, or pass the format it really has (--format)"
        ) from None
    if len(members) > _MAX_MEMBERS:
        raise UnsupportedFormatError(
            f"{what} holds {len(members)} members, more than {_MAX_MEMBERS}; refusing it as a "
            "possible zip bomb. Save the model again with skops.io.dump"
        )
    total = 0
    for member in members:
        total += member.file_size
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > _RATIO_FLOOR and ratio > _MAX_RATIO:
            raise UnsupportedFormatError(
                f"{what} has a member {member.filename!r} that expands {ratio:.0f} times "
                f"(to {member.file_size} bytes); refusing it as a possible zip bomb. Save the "
                "model again with skops.io.dump"
            )
    if total > MAX_EXPANDED_BYTES:
        raise UnsupportedFormatError(
            f"{what} would expand to {total} bytes, more than {MAX_EXPANDED_BYTES}; refusing "
            "it as a possible zip bomb. Save the model again with skops.io.dump"
        )


def check_onnx(data: bytes, what: str = "the ONNX model") -> None:
    """Refuse an ONNX model whose tensors live in external files.

    Examples
    --------
    >>> check_onnx(b"\\x00garbage")
    Traceback (most recent call last):
    ...
    watchkeeper.registry._errors.UnsupportedFormatError: the ONNX model is not a valid ONNX ...
    """
    from watchkeeper._extras import require

    onnx = require("onnx", extra="onnx", purpose="Checking ONNX models")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf's DecodeError and onnx's own errors
        raise UnsupportedFormatError(
            f"{what} is not a valid ONNX model: {_first_line(exc)}"
        ) from None
    for tensor in _onnx_tensors(onnx, model.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            raise UnsafeFormatError(
                f"{what} keeps tensor {tensor.name!r} in an external file {location!r}; "
                "watchkeeper loads only self-contained ONNX models (an external path is "
                "resolved on the machine that loads it). Save it with "
                "onnx.save_model(model, path, save_as_external_data=False)"
            )


def _onnx_tensors(onnx: Any, graph: Any) -> Any:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            if attribute.HasField("sparse_tensor"):
                yield attribute.sparse_tensor.values
                yield attribute.sparse_tensor.indices
            if attribute.HasField("g"):
                yield from _onnx_tensors(onnx, attribute.g)
            for sub in attribute.graphs:
                yield from _onnx_tensors(onnx, sub)


_NATIVE_PROBES = {
    "lightgbm": (
        "import sys, lightgbm\n"
        "b = lightgbm.Booster(model_str=sys.stdin.buffer.read().decode('utf-8'))\n"
        "b.num_trees()\n"
    ),
    "xgboost": (
        "import sys, xgboost\n"
        "b = xgboost.Booster()\n"
        "b.load_model(bytearray(sys.stdin.buffer.read()))\n"
        "b.num_features()\n"
    ),
}


def check_native_file(library: str, data: bytes, what: str) -> None:
    """Open a LightGBM or XGBoost model in a separate process first.

    Their parsers are native code that can abort the process (``std::terminate``) or
    allocate without bound on a malformed file; a child process takes that instead of the
    caller. Registered bytes are verified by hash on every later load, so only files that
    passed this check are ever parsed in process.
    """
    if library == "lightgbm":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UnsupportedFormatError(
                f"{what} is not a LightGBM model file (not UTF-8 text); pass the format it "
                "really has (--format)"
            ) from None
        if "\nend of trees" not in text:
            raise UnsupportedFormatError(
                f"{what} is not a complete LightGBM model file (no 'end of trees' line: "
                "truncated or another format); save it again with Booster.save_model"
            )
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-c", _NATIVE_PROBES[library]],
            input=data,
            capture_output=True,
            timeout=120,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise UnsupportedFormatError(
            f"{what} could not be opened by {library} within 120 s; refusing it"
        ) from None
    if done.returncode != 0:
        lines = [
            line.strip()
            for line in done.stderr.decode("utf-8", "replace").splitlines()
            if line.strip() and not line.startswith(("Traceback", "  "))
        ]
        telling = [line for line in lines if re.search(r"error|fatal|terminat|fail", line, re.I)]
        why = (telling or lines or [f"the reader stopped with exit code {done.returncode}"])[-1]
        raise UnsupportedFormatError(
            f"{what} cannot be read by {library}: {why[:300]}; it is corrupted or not a "
            f"{library} model file"
        )


def check_regular_file(path: Path) -> None:
    """Refuse a path that is a symbolic link or not a regular file.

    Examples
    --------
    >>> check_regular_file(Path("/nonexistent/model.skops"))
    Traceback (most recent call last):
    ...
    watchkeeper.registry._errors.UnsupportedFormatError: model file '/nonexistent/model.skops' ...
    """
    if path.is_symlink():
        raise UnsafeFormatError(
            f"model file {str(path)!r} is a symbolic link; watchkeeper reads only regular "
            "files, so that a link cannot make it read another file: pass the file itself"
        )
    if not path.exists():
        raise UnsupportedFormatError(f"model file {str(path)!r} does not exist")
    if not path.is_file():
        raise UnsupportedFormatError(
            f"model file {str(path)!r} is not a regular file; pass a model file or an MLflow "
            "model folder"
        )


def check_inside(folder: Path, relative: object, what: str) -> Path:
    """``folder / relative``, refused unless it is a regular file inside ``folder``.

    Examples
    --------
    >>> check_inside(Path("/srv/model"), "../../etc/passwd", "the model file")
    Traceback (most recent call last):
    ...
    watchkeeper.registry._errors.UnsafeFormatError: the model file '../../etc/passwd' is not ...
    """
    text = str(relative)
    base = folder.resolve()
    target = folder / text
    try:
        inside = target.resolve().is_relative_to(base) and not Path(text).is_absolute()
    except (OSError, RuntimeError):
        inside = False
    if not inside:
        raise UnsafeFormatError(
            f"{what} {text!r} is not inside the model folder {str(folder)!r}; refusing to "
            "read a file outside it"
        )
    check_regular_file(target)
    return target


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]
