"""An import-linter contract type: apps meet only at their public interfaces (STYLE S1).

``public_interface`` checks every direct import (module level or inside a function) of a
module of one of ``apps`` by a module outside that app: the imported module must be the app
package itself or one of its ``public`` modules (``services``, ``selectors``) — never its
models, admin, tasks, or a module inside its services package. ``composition_root``
(the Django project, which wires urls, tasks and settings together) is exempt.

Configured in ``pyproject.toml`` (``[tool.importlinter]``) and run by ``lint-imports`` in
CI, beside the built-in ``layers`` and ``acyclic_siblings`` contracts.
"""

from __future__ import annotations

from typing import Any

import grimp
from importlinter import Contract, ContractCheck, fields, output


class PublicInterfaceContract(Contract):
    type_name = "public_interface"

    apps = fields.ListField(subfield=fields.ModuleField())
    public = fields.ListField(subfield=fields.StringField())
    composition_root = fields.ListField(subfield=fields.ModuleField(), required=False)

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        roots = [m.name for m in self.composition_root or []]  # type: ignore[union-attr]
        violations: list[dict[str, Any]] = []
        for app in self.apps:  # type: ignore[attr-defined]
            package = app.name
            allowed = {package} | {f"{package}.{name}" for name in self.public}  # type: ignore[attr-defined]
            for module in sorted(graph.find_descendants(package)):
                if module in allowed:
                    continue
                for importer in sorted(graph.find_modules_that_directly_import(module)):
                    if _within(importer, [package, *roots]):
                        continue
                    violations.extend(
                        {"importer": importer, "imported": module, "line": d["line_number"]}
                        for d in graph.get_import_details(importer=importer, imported=module))
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for v in check.metadata["violations"]:
            output.print_error(f"{v['importer']} -> {v['imported']} (l.{v['line']})",
                               bold=False)
        output.new_line()
        output.print(f"Import only {', '.join(self.public)} of another app "  # type: ignore[attr-defined]
                     "(add a selector or service there).")


def _within(module: str, packages: list[str]) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in packages)
