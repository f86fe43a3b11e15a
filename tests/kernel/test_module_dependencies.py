"""The project's modules are layered (DESIGN.md section 8), and imports point one way: down.

    web       pages, API views, consumers, admin, the timeline read model
    runtime   the turn host, the agent loop, the LLM client, tools, MCP
    approvals requests, decisions, policies, grants, notifications
    core      sessions, turns and their state machine, timeline rows, the outbox, selectors
    kernel    settings, errors, validators, shared API helpers, the vocabulary

Every import counts: at module level, inside a function, and under ``if TYPE_CHECKING:`` (a type
hint that needs an upward import is a design that needs one). The only imports allowed inside a
function are those of ``AppConfig.ready``, where Django prescribes them, and the MCP SDK's client
where it is loaded on demand (``LOADED_ON_DEMAND``).
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agentproj", "sessions_app", "approvals_app")
LAYER_NAMES = ("kernel", "core", "approvals", "runtime", "web")

# The longest prefix that names a module decides its layer.
LAYER_OF_PREFIX = {
    "agentproj": "kernel",
    # Wiring: what starts the processes and routes requests sits on top of everything.
    "agentproj.urls": "web",
    "agentproj.asgi": "web",
    "sessions_app": "core",
    "sessions_app.models": "core",
    "sessions_app.core": "core",
    "approvals_app": "approvals",
    "approvals_app.api": "web",
    "approvals_app.admin": "web",
    "approvals_app.inbox": "web",
    "approvals_app.integrations.slack_interactions": "web",
    "sessions_app.runtime": "runtime",
    "sessions_app.mcp": "runtime",
    "sessions_app.tasks": "runtime",
    "sessions_app.mcp.admin": "web",
    "sessions_app.web": "web",
    "sessions_app.admin": "web",
    "sessions_app.demo_model": "web",
    "sessions_app.invariants": "web",
    "sessions_app.signals": "web",
    "sessions_app.apps": "web",
    "sessions_app.management": "web",
}
# Only the processes that run turns import the MCP SDK, and only through this module.
MCP_SDK_IMPORTERS = {"sessions_app.mcp.client"}
# Imports made inside a function, by module. The MCP SDK costs about 25 MB in every process that
# loads it: its client module is imported only once a worker has an MCP server to talk to. The
# OpenTelemetry SDK and exporter cost about 35 MB: loaded only where traces are on.
LOADED_ON_DEMAND = {
    "sessions_app.mcp.on_demand": ["sessions_app.mcp.client"],
    "agentproj.tracing": ["agentproj.tracing_export"],
}


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


def layer_of(module: str) -> str:
    prefixes = [
        prefix for prefix in LAYER_OF_PREFIX if module == prefix or module.startswith(prefix + ".")
    ]
    assert prefixes, f"{module} belongs to no layer: add it to LAYER_OF_PREFIX"
    return LAYER_OF_PREFIX[max(prefixes, key=len)]


def imported_names(node: ast.AST, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = module if is_package else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    base = ".".join(filter(None, [package if node.level else "", node.module or ""]))
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def imports_of(module: str, path: Path, modules: dict[str, Path]):
    """(project modules it imports anywhere, those imported inside functions, the third-party
    top-level packages it imports)."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    found, nested, external = set(), set(), set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                names = imported_names(child, module, is_package)
                ours = {name for name in names if name in modules and name != module}
                found.update(ours)
                if in_function:
                    nested.update(ours)
                if not ours and not getattr(child, "level", 0):
                    external.update(name.split(".")[0] for name in names[:1])
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            visit(child, inside)

    visit(tree, False)
    return found, nested, external


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {module: imports_of(module, path, modules)[0] for module, path in modules.items()}


def test_it_imports_nothing_from_a_higher_layer():
    upward = sorted(
        f"{module} ({layer_of(module)}) imports {imported} ({layer_of(imported)})"
        for module, imported_modules in import_graph().items()
        for imported in imported_modules
        if LAYER_NAMES.index(layer_of(imported)) > LAYER_NAMES.index(layer_of(module))
    )

    assert upward == []


def test_it_has_no_import_inside_a_function():
    modules = project_modules()
    nested = {
        module: sorted(found)
        for module, path in modules.items()
        if (found := imports_of(module, path, modules)[1]) and not module.endswith(".apps")
    }

    assert nested == LOADED_ON_DEMAND


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


def test_only_the_mcp_client_imports_the_mcp_sdk():
    modules = project_modules()
    importers = {
        module for module, path in modules.items() if "mcp" in imports_of(module, path, modules)[2]
    }

    assert importers == MCP_SDK_IMPORTERS
