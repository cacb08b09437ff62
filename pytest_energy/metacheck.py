"""Does a window's work run on torch's ``meta`` device? Checked after the window, never in it.

A model built under ``torch.device("meta")`` runs without data: no kernel runs, so a sensor
measures only Python overhead. Only the roofline meter, which models the operations, can
give such a window a figure. This looks at what the window could reach: the callable and
its arguments, the block's local variables, the outputs it reported, a test's fixtures.
It never imports torch, and looks one level into containers, bound methods, partials and
closures.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable, Mapping
from types import FunctionType, MethodType
from typing import Any

_DEPTH = 2


def find_meta(objects: Iterable[object]) -> str | None:
    """A short description of the first meta tensor or module among ``objects``, or None."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    tensor = getattr(torch, "Tensor", None)
    module = getattr(getattr(torch, "nn", None), "Module", None)
    if tensor is None:
        return None
    seen: set[int] = set()
    for obj in objects:
        found = _find(obj, tensor, module, seen, _DEPTH)
        if found:
            return found
    return None


def _find(obj: object, tensor: Any, module: Any, seen: set[int], depth: int) -> str | None:
    if obj is None or isinstance(obj, (str, bytes, int, float, bool)) or id(obj) in seen:
        return None
    seen.add(id(obj))
    if isinstance(obj, tensor):
        return f"a tensor of shape {tuple(obj.shape)} on meta" if _is_meta(obj) else None
    if module is not None and isinstance(obj, module):
        return _module_meta(obj)
    device = getattr(type(obj), "device", None)
    if device is not None and not callable(device):
        # a model-like object (a transformers pipeline) that reports its device
        try:
            if str(getattr(obj, "device", "")) == "meta":
                return f"{type(obj).__name__} on meta"
        except Exception:
            return None
    if depth <= 0:
        return None
    children: Iterable[object] = ()
    if isinstance(obj, Mapping):
        children = list(obj.values())[:64]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = list(obj)[:64]
    elif isinstance(obj, MethodType):
        children = [obj.__self__]
    elif isinstance(obj, functools.partial):
        children = [obj.func, *obj.args, *obj.keywords.values()]
    elif isinstance(obj, FunctionType):
        children = [c.cell_contents for c in obj.__closure__ or () if _filled(c)]
    else:
        model = getattr(obj, "model", None)  # a pipeline's model
        if model is not None:
            children = [model]
    for child in children:
        found = _find(child, tensor, module, seen, depth - 1)
        if found:
            return found
    return None


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


def _is_meta(t: Any) -> bool:
    return bool(getattr(t, "is_meta", False))


def _module_meta(m: Any) -> str | None:
    for kind, items in (("parameter", m.parameters), ("buffer", m.buffers)):
        try:
            first = next(iter(items()), None)
        except Exception:
            return None
        if first is not None:
            return f"{type(m).__name__} with its {kind}s on meta" if _is_meta(first) else None
    return None
