"""Names of a package that load their module on first use (PEP 562), so that importing the package
does not import optional dependencies or the compiled library."""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, List, Mapping, Sequence, Tuple

__all__ = ["lazy_names"]


def lazy_names(
    package: str, modules: Mapping[str, Sequence[str]], namespace: Dict[str, Any]
) -> Tuple[List[str], Callable[[str], Any], Callable[[], List[str]]]:
    """``(__all__, __getattr__, __dir__)`` for ``package`` whose public names live in
    ``modules`` (module name -> names); a name, once loaded, is bound in ``namespace`` (the
    package's globals)."""
    owners = {name: module for module, names in modules.items() for name in names}
    public = list(owners)

    def getattr_(name: str) -> Any:
        if name in owners:
            value = getattr(importlib.import_module(owners[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> List[str]:
        return sorted(set(namespace) | set(public))

    return public, getattr_, dir_
