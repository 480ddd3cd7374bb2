"""docs/integrations.md shows each recipe exactly as the tests run it.

Each recipe is a module of ``recipes/``; the doc shows it in a ``python`` block right
after a ``<!-- recipe: NAME.py -->`` line, without its docstring and its ``# mypy:``
line. This check needs no framework, so the main suite runs it too: a recipe changed
without its doc, or the other way round, fails there.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

HERE = Path(__file__).parent
DOC = HERE.parent.parent / "docs" / "integrations.md"
RECIPES = sorted(p for p in (HERE / "recipes").glob("*.py") if p.name != "__init__.py")
BLOCK = re.compile(r"<!-- recipe: (?P<name>[\w.]+) -->\n+```python\n(?P<code>.*?)\n```", re.S)


def shown(path: Path) -> str:
    """What the doc shows of a recipe: its code, less the module docstring and the
    mypy line (which say where the recipe lives and how this repo type-checks it)."""
    source = path.read_text()
    body = ast.parse(source).body
    lines = source.splitlines()
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        lines = lines[body[0].end_lineno :]
    kept = [line for line in lines if not line.startswith("# mypy:")]
    return "\n".join(kept).strip()


def blocks() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for match in BLOCK.finditer(DOC.read_text()):
        found.setdefault(match["name"], []).append(match["code"].strip())
    return found


def test_there_are_recipes() -> None:
    assert len(RECIPES) >= 6
    assert "<!-- recipe:" in DOC.read_text()


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.name)
def test_the_doc_shows_the_recipe_as_it_is(recipe: Path) -> None:
    shown_in_doc = blocks().get(recipe.name)
    assert shown_in_doc, f"docs/integrations.md does not show {recipe.name}"
    assert shown_in_doc == [shown(recipe)], f"docs/integrations.md and {recipe.name} differ"


def test_the_doc_shows_no_recipe_that_does_not_exist() -> None:
    assert set(blocks()) <= {path.name for path in RECIPES}
