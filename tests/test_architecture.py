"""The layout docs/architecture.md draws is the layout the code has: its import-rule table is read here
and every `vocagan` import in the package is checked against it (module level and inside functions;
`if TYPE_CHECKING:` blocks are type hints only and are skipped)."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "vocagan"


def _rules() -> dict[str, set[str]]:
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text.split("## Import rules", 1)[1].split("\n## ", 1)[0]
    rules = {}
    for line in section.splitlines():
        m = re.match(r"^\| (\w+) \| ([^|]*)\|$", line.strip())
        if m and m.group(1) != "unit":
            rules[m.group(1)] = {u.strip() for u in m.group(2).split(",") if u.strip()}
    assert rules, "no import-rule table found in docs/architecture.md"
    return rules


def _unit(module: str) -> str:
    """vocagan.prep.regions -> prep; vocagan.train -> train; vocagan -> vocagan."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "vocagan"


def _type_checking_lines(tree: ast.AST) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported vocagan module) for every import in the file, outside TYPE_CHECKING blocks."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_lines(tree)
    out = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.level == 0
            and (node.module == "vocagan" or node.module.startswith("vocagan."))
        ):
            if node.module == "vocagan":  # from vocagan import metrics -> vocagan.metrics
                out += [(node.lineno, f"vocagan.{a.name}") for a in node.names if a.name != "__version__"]
            else:
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.startswith("vocagan.")]
    return out


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(REPO).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        yield path, name


def test_the_rule_table_names_every_unit_of_the_package():
    rules = _rules()
    units = {_unit(name) for _, name in _modules()} - {"vocagan", "__main__"}
    assert units == set(rules), (
        f"units without a rule: {sorted(units - set(rules))}; rules for no unit: {sorted(set(rules) - units)}"
    )
    for unit, allowed in rules.items():
        unknown = allowed - set(rules) - {"every unit"}
        assert not unknown, f"{unit} may import unknown units {unknown}"


def test_every_import_follows_the_rules_and_resolves():
    rules = _rules()
    problems = []
    for path, name in _modules():
        unit = _unit(name)
        allowed = rules.get(unit, set())
        for line, target in _imports(path):
            where = f"{path.relative_to(REPO)}:{line}"
            if importlib.util.find_spec(target) is None:
                problems.append(f"{where} imports {target}, which does not exist")
                continue
            t = _unit(target)
            if unit in ("cli", "__main__", "vocagan") or t == unit or "every unit" in allowed:
                continue
            if t not in allowed:
                problems.append(
                    f"{where}: {unit} imports {t} ({target}); docs/architecture.md allows {sorted(allowed)}"
                )
    assert not problems, "\n".join(problems)


def test_the_rules_have_no_cycle():
    rules = {u: a - {u, "every unit"} for u, a in _rules().items() if "every unit" not in a}
    state: dict[str, int] = {}

    def visit(u, path):
        if state.get(u) == 1:
            pytest.fail(f"import cycle: {' -> '.join(path + [u])}")
        if state.get(u) == 2:
            return
        state[u] = 1
        for v in rules.get(u, ()):
            visit(v, path + [u])
        state[u] = 2

    for u in rules:
        visit(u, [])


def test_no_package_file_is_far_over_the_size_guideline():
    long = [(p.relative_to(REPO), n) for p, _ in _modules() if (n := len(p.read_text().splitlines())) > 450]
    assert not long, f"files over 450 lines (guideline ~400): {long}"
