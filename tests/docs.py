"""The docs site's pages and their code blocks, for the tests that execute or check them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def page(name: str) -> str:
    """The Markdown of one docs page (``"reference"`` -> ``docs/reference.md``), or the README."""
    return (README if name == "README" else DOCS / f"{name}.md").read_text()


def blocks(name: str, language: str) -> list[str]:
    """The fenced code blocks of one page in one language, in page order."""
    return [body for lang, body in FENCE.findall(page(name)) if lang == language]


def pages() -> list[str]:
    """Every docs page's name (without ``.md``), the README included."""
    return ["README", *sorted(path.stem for path in DOCS.glob("*.md"))]


def section(name: str, heading: str) -> str:
    """The text of one ``## heading`` section of a page, up to the next heading of that level."""
    text = page(name)
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]
