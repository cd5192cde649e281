"""Rewrite the Colab badges and install cells of the notebooks and README from tools/links.py,
so that moving the repository, or a new version in pyproject.toml, is one change plus
`make links`.

    python -m tools.sync_links [--check]
"""

import json
import re
import sys
from pathlib import Path

from helpers.files import project_root, write_text
from tools.links import colab_badge, install_url

BADGE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\(https://colab\.research\.google\.com/github/"
                   r"[^)]*/notebooks/(?P<notebook>[\w.-]+\.ipynb)\)")
INSTALL = re.compile(r"git\+https://github\.com/[\w.-]+/[\w.-]+(?:@[\w.+-]+)?")  # @release


def rewrite(text: str) -> str:
    """`text` with every Colab badge and pip install address pointing at links.py's values."""
    text = BADGE.sub(lambda m: colab_badge(m["notebook"]), text)
    return INSTALL.sub(install_url(), text)


def _rewrite_notebook(path: Path) -> bool:
    """Rewrite one notebook's cell sources in place; True when anything changed."""
    notebook = json.loads(path.read_text())
    changed = False
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        new = rewrite(source)
        if new != source:
            cell["source"] = new.splitlines(keepends=True)
            changed = True
    if changed:
        write_text(path, json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
    return changed


def sync_links(root: Path | None = None, check: bool = False) -> list[Path]:
    """Bring README.md and notebooks/*.ipynb in line with links.py; return the files that
    disagreed. With `check`, only report them."""
    root = root or project_root()
    stale = []
    for path in [root / "README.md", *sorted((root / "notebooks").glob("*.ipynb"))]:
        if not path.exists():
            continue
        if path.suffix == ".ipynb":
            cells = json.loads(path.read_text())["cells"]
            disagrees = any(rewrite("".join(c["source"])) != "".join(c["source"]) for c in cells)
        else:
            disagrees = rewrite(path.read_text()) != path.read_text()
        if disagrees:
            stale.append(path)
            if not check:
                if path.suffix == ".ipynb":
                    _rewrite_notebook(path)
                else:
                    write_text(path, rewrite(path.read_text()))
    return stale


if __name__ == "__main__":
    check = "--check" in sys.argv[1:]
    changed = sync_links(check=check)
    if check and changed:
        sys.exit("error: these files disagree with tools/links.py (run `make links`): "
                 + ", ".join(str(p) for p in changed))
