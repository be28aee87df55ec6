"""Two small fixes for the API reference built from regkit's numpydoc docstrings.

1. Cross-references to regkit names that a package re-exports. The API reference documents every function and class once, in the module that defines it
(``regkit.registry.register``, ``regkit.viz.sliders.slider``). Readers and chapters use the
shorter public names (``regkit.register``, ``regkit.viz.slider``). When Sphinx cannot find a
``py`` target that starts with ``regkit.``, this extension imports the object the name points
to and retries with the name of its defining module, so both spellings link to the same entry.
Constants re-exported by a package (``regkit.viz.DPI``) are matched to the submodule that holds
the same object. A short name that a docstring uses outside its own module (``as_image``) links
when exactly one documented regkit object carries it. Nothing is fetched from the network; a name that does not import stays
unresolved (and nitpick mode reports it).

2. Docstrings of constants and properties whose first sentence holds a colon. Napoleon reads
``Text: more text`` on the first line of such a docstring as the Google-style inline form
``type: description`` and turns the prose before the colon into a type. The book's docstrings
are numpydoc, where that form does not exist, so the prose is put back as it was written.

"""

from __future__ import annotations

import importlib
import sys

from sphinx.util import logging

logger = logging.getLogger(__name__)

_PY_ROLES = {"func", "class", "meth", "attr", "obj", "data", "exc", "const", "mod"}


def _lookup(dotted: str):
    """The object a dotted ``regkit`` name points to, or None."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except Exception:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _canonical(obj) -> str | None:
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(obj, type(importlib)):  # a module
        return obj.__name__
    if not module or not qualname or "<" in qualname:
        return None
    return f"{module}.{qualname}"


def _same_object_elsewhere(dotted: str, obj) -> list[str]:
    """Names ``module.attr`` of loaded regkit submodules that hold this very object."""
    package, _, attr = dotted.rpartition(".")
    names = []
    for modname, module in list(sys.modules.items()):
        if modname.startswith(package + ".") and getattr(module, attr, None) is obj:
            names.append(f"{modname}.{attr}")
    return sorted(names)


def _resolve(app, env, node, contnode):
    if node.get("refdomain") != "py" or node.get("reftype") not in _PY_ROLES:
        return None
    target = node.get("reftarget", "")
    candidates = [target]
    module = node.get("py:module")
    if module and not target.startswith("regkit."):
        candidates.append(f"{module}.{target}")
    domain = env.get_domain("py")
    for name in candidates:
        if not name.startswith("regkit."):
            continue
        obj = _lookup(name)
        if obj is None:
            continue
        canonical = _canonical(obj)
        targets = [canonical] if canonical else _same_object_elsewhere(name, obj)
        for target in targets:
            if target == name:
                continue
            for role in dict.fromkeys((node["reftype"], "obj")):
                found = domain.resolve_xref(
                    env, node["refdoc"], app.builder, role, target, node, contnode
                )
                if found is not None:
                    return found
    return _resolve_unique_short_name(app, env, node, contnode, domain, target)


def _resolve_unique_short_name(app, env, node, contnode, domain, target):
    """A bare name (no dots) that exactly one documented regkit object carries."""
    if not target or "." in target:
        return None
    matches = domain.find_obj(env, None, None, target, node["reftype"], searchmode=1)
    names = sorted({name for name, _ in matches if name.startswith("regkit.")})
    if len(names) != 1:
        return None
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], names[0], node, contnode
    )


_ATTRIBUTE_KINDS = ("attribute", "data", "property")
_original_first_line: dict[str, str] = {}


def _remember_first_line(app, what, name, obj, options, lines):
    """Before napoleon: keep the first line of a constant's or property's docstring."""
    if what in _ATTRIBUTE_KINDS:
        first = next((line for line in lines if line.strip()), "")
        _original_first_line[name] = first.strip()


def _restore_first_line(app, what, name, obj, options, lines):
    """After napoleon: undo an inline ``type:`` that was prose before a colon."""
    first = _original_first_line.pop(name, None)
    if what not in _ATTRIBUTE_KINDS or not first or len(lines) < 2:
        return
    if not lines[-1].startswith(":type: ") or lines[-2].strip():
        return
    type_text = lines[-1][len(":type: "):]
    if not first.startswith(type_text):
        return
    del lines[-2:]
    for i, line in enumerate(lines):
        if line.strip():
            lines[i] = f"{type_text}: {line.lstrip()}"
            break
    else:
        lines.insert(0, type_text)


def setup(app):
    app.connect("missing-reference", _resolve)
    # napoleon handles autodoc-process-docstring at the default priority, 500.
    app.connect("autodoc-process-docstring", _remember_first_line, priority=400)
    app.connect("autodoc-process-docstring", _restore_first_line, priority=600)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
