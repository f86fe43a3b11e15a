"""The project's modules import each other in one direction.

An import inside a function can hide a cycle that only bites at run time (the services of the
two apps once imported each other that way); this reads every module's imports and fails on
either. Imports under ``if TYPE_CHECKING:`` serve type hints only and do not count, nor does the
``AppConfig.ready`` import that connects signal receivers, as Django prescribes.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agentproj", "sessions_app", "approvals_app")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def imported_names(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = module if is_package else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    base = ".".join(filter(None, [package if node.level else "", node.module or ""]))
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def is_type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imports_of(module: str, path: Path, modules: dict[str, Path]):
    """(imported project modules at module level, those imported inside functions)."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    top, nested = set(), set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if is_type_checking_block(child):
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found = {
                    name
                    for name in imported_names(child, module, is_package)
                    if name in modules and name != module
                }
                (nested if in_function else top).update(found)
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            visit(child, inside)

    visit(tree, False)
    return top, nested


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {module: imports_of(module, path, modules)[0] for module, path in modules.items()}


def test_it_has_no_import_inside_a_function():
    modules = project_modules()
    nested = {
        module: sorted(found)
        for module, path in modules.items()
        if (found := imports_of(module, path, modules)[1]) and not module.endswith(".apps")
    }

    assert nested == {}


def test_it_has_no_import_cycle():
    graph = import_graph()
    cycles = []
    finished: set[str] = set()

    def walk(module: str, trail: list[str]) -> None:
        if module in trail:
            cycles.append([*trail[trail.index(module) :], module])
            return
        if module in finished:
            return
        for imported in sorted(graph[module]):
            walk(imported, [*trail, module])
        finished.add(module)

    for module in sorted(graph):
        walk(module, [])

    assert cycles == []


def test_it_layers_the_services_of_the_two_apps_in_one_direction():
    graph = import_graph()

    assert "sessions_app.services" in graph["approvals_app.services"]
    assert "approvals_app.records" in graph["sessions_app.services"]
    assert "approvals_app.services" not in graph["sessions_app.services"]
