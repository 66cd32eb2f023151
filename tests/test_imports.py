"""The package's import graph has no cycles (imports inside functions count too), and every
module imports on its own."""

import ast
import importlib
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "gan_jax"


def _modules() -> dict[str, pathlib.Path]:
  out = {}
  for path in PACKAGE.rglob("*.py"):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    out[name] = path
  return out


def _owner(name: str, modules) -> str | None:
  """The module a dotted import target belongs to (a name imported from it maps to it)."""
  while name and name not in modules:
    name = name.rpartition(".")[0]
  return name or None


def import_graph() -> dict[str, set[str]]:
  """module -> the package's modules it imports, anywhere in its file.

  `from gan_jax.x import y` counts as importing gan_jax.x.y if that is a module, else
  gan_jax.x. Edges to the module's own ancestor packages are left out: Python has imported
  those before the module runs, so naming one adds no dependency.
  """
  modules = _modules()
  graph = {m: set() for m in modules}
  for name, path in modules.items():
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
      if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
          anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
          base = ".".join(anchor + ([base] if base else []))
        targets = [base] + [f"{base}.{a.name}" for a in node.names]
      else:
        continue
      for target in targets:
        owner = _owner(target, modules) if target.startswith("gan_jax") else None
        if owner and owner != name and not name.startswith(owner + "."):
          graph[name].add(owner)
  return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
  """Strongly connected components with more than one module (Tarjan's algorithm)."""
  index, low, on_stack, stack, out = {}, {}, set(), [], []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph[v]:
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
        out.append(sorted(component))

  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def test_cycle_finder_finds_a_planted_cycle():
  graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
  assert find_cycles(graph) == [["a", "b", "c"]]


def test_package_has_no_import_cycles():
  graph = import_graph()
  assert "gan_jax.train" in graph and "gan_jax.evaluation.evaluator" in graph
  assert find_cycles(graph) == []


def test_losses_import_no_registry():
  graph = import_graph()
  for module in (m for m in graph if m.startswith("gan_jax.losses")):
    assert not {d for d in graph[module] if not d.startswith("gan_jax.losses")}, module


@pytest.mark.parametrize("module", sorted(_modules()))
def test_module_imports_on_its_own(module):
  importlib.import_module(module)
