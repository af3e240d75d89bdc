"""The layering contract: what may import what.

    records/   the record layer: every file format, finding, preparing, the
               cache reader, uploads. numpy/scipy and the format libraries
               only: no torch, nothing from above it.
    web/       the web layer's parts (report, cards, texts, page): above the
               record layer, under the two entry points app.py and serve.py.
    top level  the scripts you run and their shared modules.

The contract is read from the source (ast), so a new violation fails here
with the file and line that made it, before anyone meets it as an import
error or a slow `import records`.
"""
import ast
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

# Entry points: run from the shell, by streamlit or by uvicorn, never imported
# by a library module. Tests and bench sections run them, which is what they
# are for.
ENTRY_POINTS = {'main', 'predict', 'app', 'serve', 'bench', 'pipeline', 'statistic'}
HARNESSES = ('tests', 'benches')
LONGEST_FUNCTION = 100


def project_files():
    """Every Python file of the project (not the venv, not data folders)."""
    skip = {'.venv', 'data', 'models', 'results', 'shap', '.git'}
    return sorted(p for p in ROOT.rglob('*.py')
                  if not skip & set(p.relative_to(ROOT).parts[:1]))


def module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts = parts[:-1]
    return '.'.join(parts)


def project_modules():
    return {module_name(p): p for p in project_files()}


def imports_of(path, modules, top_level_only=False):
    """(module imported, line) for each import of a project module in `path`;
    top_level_only: the imports that run when the module is imported (not
    those inside functions)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f'{node.module}.{a.name}' for a in node.names]
        else:
            continue
        for name in names:
            if name in modules:
                found.append((name, node.lineno))
    return found


def test_the_record_layer_imports_nothing_above_it():
    modules = project_modules()
    bad = [f'{p.relative_to(ROOT)}:{line} imports {name}'
           for mod, p in modules.items() if mod.split('.')[0] == 'records'
           for name, line in imports_of(p, modules) if name.split('.')[0] != 'records']
    assert not bad, '\n'.join(bad)


def test_the_record_layer_loads_no_torch():
    code = ('import sys, records, records.formats, records.uploads, records.cache; '
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'utils', 'web'}))")
    out = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == '[]', out.stdout


def test_only_the_entry_points_and_the_web_layer_import_the_web_layer():
    modules = project_modules()
    bad = [f'{p.relative_to(ROOT)}:{line} imports {name}'
           for mod, p in modules.items()
           if mod.split('.')[0] not in ('web', 'app', 'serve', *HARNESSES)
           for name, line in imports_of(p, modules) if name.split('.')[0] == 'web']
    assert not bad, '\n'.join(bad)


def test_no_library_module_imports_an_entry_point():
    modules = project_modules()
    bad = [f'{p.relative_to(ROOT)}:{line} imports {name}'
           for mod, p in modules.items() if mod.split('.')[0] not in HARNESSES
           for name, line in imports_of(p, modules) if name in ENTRY_POINTS]
    assert not bad, '\n'.join(bad)


def test_no_import_cycle():
    """Over every import, function-level ones included: a cycle broken only by
    importing inside a function is still a cycle of the design."""
    modules = project_modules()
    graph = {}
    for mod, p in modules.items():
        if mod.split('.')[0] in HARNESSES:
            continue
        # A package and its own submodules form one node; a package's
        # __init__ importing its parts is not a cycle.
        node = 'records' if mod.startswith('records') else mod
        for name, _ in imports_of(p, modules):
            target = 'records' if name.startswith('records') else name
            if target != node and target.split('.')[0] not in HARNESSES:
                graph.setdefault(node, set()).add(target)
    cycle = _find_cycle(graph)
    assert cycle is None, ' -> '.join(cycle)


def test_no_cycle_inside_the_record_layer():
    """records' submodules import each other only downwards (the package's
    __init__ gathers them and is not counted)."""
    modules = project_modules()
    graph = {}
    for mod, p in modules.items():
        if mod.startswith('records.') and not p.name == '__init__.py':
            for name, _ in imports_of(p, modules, top_level_only=True):
                if name.startswith('records.') and name in modules \
                        and not modules[name].name == '__init__.py':
                    graph.setdefault(mod, set()).add(name)
    cycle = _find_cycle(graph)
    assert cycle is None, ' -> '.join(cycle)


def _find_cycle(graph):
    """One cycle of a directed graph as a list of nodes, or None."""
    state, stack = {}, []

    def visit(n):
        state[n] = 'open'
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 'open':
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        state[n] = 'done'
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_one_module_loads_checkpoints():
    calls = [f'{p.relative_to(ROOT)}:{node.lineno}' for p in project_files()
             if p.relative_to(ROOT).parts[0] not in HARNESSES
             for node in ast.walk(ast.parse(p.read_text()))
             if isinstance(node, ast.Call) and ast.unparse(node.func) == 'torch.load']
    assert len(calls) == 1, calls
    assert calls[0].startswith('runs.py:'), calls


def test_no_function_is_longer_than_a_screenful():
    long = [f'{p.relative_to(ROOT)}:{node.lineno} {node.name} '
            f'({node.end_lineno - node.lineno + 1} lines)'
            for p in project_files()
            for node in ast.walk(ast.parse(p.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > LONGEST_FUNCTION]
    assert not long, '\n'.join(long)


def test_the_contract_sees_a_violation(tmp_path):
    """The checks above can fail: a record-layer module importing torch and a
    top-level module is found, and so is a two-module cycle."""
    bad = tmp_path / 'records' / 'bad.py'
    bad.parent.mkdir()
    bad.write_text('import torch\nimport utils\n\ndef f():\n    import predict\n')
    found = imports_of(bad, {'utils': None, 'predict': None})
    assert found == [('utils', 2), ('predict', 5)]
    assert _find_cycle({'a': {'b'}, 'b': {'a'}}) == ['a', 'b', 'a']
    assert _find_cycle({'a': {'b'}, 'b': {'c'}}) is None
    assert Path(ROOT / 'records' / '__init__.py').is_file()
