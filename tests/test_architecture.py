"""The layout's rules, checked on the import graph of the source (docs/architecture.md).

Every import counts, also those inside functions (a lazy import still couples two modules):
- the engine (`ivcore` but its clients) imports no widget code;
- backends never import the session or anything above it (the stages included);
- the video families are found through one registry (`ivcore.backends.families`), the image families
  through another (`ivcore.backends.image_families`): `backends/build.py` names no family's pipeline
  class and does not branch on them;
- the shapes world, batch and the command line are clients of the session: the engine imports
  none of them (`Session.shapes()` reaches the shapes world through `ivcore.presets` by name);
- no two modules import each other, directly or through others (no circle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ivcore", "ivwidgets")
CLIENTS = ("ivcore.shapes", "ivcore.cli", "ivcore.batch", "ivcore.testing", "ivcore.__main__")
WIDGETS = ("ivwidgets", "anywidget", "ipywidgets", "ipycanvas", "traitlets", "IPython")
# above the backends: what they must not import (the package root imports the session)
# (the stages too: what the loops and the backends both need about schedulers is ivcore.backends.schedulers)
ABOVE_BACKENDS = ("ivcore.session", "ivcore.persistence", "ivcore.presets", "ivcore.memory", "ivcore.stages")
# `from ivcore import world` still works for a while (ivcore/__init__.py's __getattr__ warns); it is not an import
# of the engine, so it is left out of the graph
ALLOWED = {("ivcore", "ivcore.shapes.world")}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module `name` imports (resolved to the deepest module or package that exists)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in modules else base)
    return {m for m in found if m} - {name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = source_modules()
    return {
        name: {m for m in imports_of(name, path, modules) if (name, m) not in ALLOWED} for name, path in modules.items()
    }


def within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_graph_sees_every_module(graph):
    assert {"ivcore.session", "ivcore.stages.denoise", "ivcore.shapes.train", "ivcore.cli.demo"} <= set(graph)
    assert "ivcore.stages.denoise" in graph["ivcore.stages.pipeline"]
    assert "ivcore.shapes.recipe" in graph["ivcore.shapes.train"]


def test_the_engine_imports_no_widget_code(graph):
    broken = {m: sorted(i for i in imps if within(i, WIDGETS)) for m, imps in graph.items() if within(m, ("ivcore",))}
    assert {m: i for m, i in broken.items() if i} == {}


def test_backends_never_import_the_session(graph):
    above = ABOVE_BACKENDS + CLIENTS
    broken = {m: sorted(i for i in imps if within(i, above) or i == "ivcore") for m, imps in graph.items()
              if within(m, ("ivcore.backends",))}  # fmt: skip
    assert {m: i for m, i in broken.items() if i} == {}


def test_families_are_found_through_the_registry_alone():
    from ivcore.backends import families

    registered = families.families()
    classes = [p for f in registered for p in f.pipelines if p]
    assert {"WanImageToVideoPipeline", "StableVideoDiffusionPipeline"} <= set(classes)
    assert len(classes) == len(set(classes))  # one family per pipeline class
    for family in registered:  # a family is a module of its own under ivcore/backends
        module = family.loader.split(":")[0]
        assert module.startswith("ivcore.backends.") and (ROOT / (module.replace(".", "/") + ".py")).is_file()
    build = (ROOT / "ivcore" / "backends" / "build.py").read_text()
    named = [c for c in classes if c in build] + [f.name for f in registered if f'"{f.name}"' in build]
    assert named == [], "build.py branches on families; register them in ivcore/backends/families.py instead"


def test_image_families_are_found_through_their_registry_alone():
    from ivcore.backends import image_families

    registered = image_families.families()
    classes = [p for f in registered for p in f.pipelines if p]
    assert {"StableDiffusionPipeline", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLPipeline"} <= set(classes)
    assert len(classes) == len(set(classes))  # one image family per pipeline class
    for family in registered:  # an image family is a module of its own under ivcore/backends
        module = family.loader.split(":")[0]
        assert module.startswith("ivcore.backends.") and (ROOT / (module.replace(".", "/") + ".py")).is_file()
    build = (ROOT / "ivcore" / "backends" / "build.py").read_text()
    named = [c for c in classes if c in build] + [f.name for f in registered if f'"{f.name}"' in build]
    assert named == [], "build.py branches on image families; register them in ivcore/backends/image_families.py"


def test_the_engine_imports_none_of_its_clients(graph):
    engine = [m for m in graph if within(m, ("ivcore",)) and not within(m, CLIENTS)]
    broken = {m: sorted(i for i in graph[m] if within(i, CLIENTS)) for m in engine}
    assert {m: i for m, i in broken.items() if i} == {}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_circle(graph):
    assert circles(graph) == []


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
