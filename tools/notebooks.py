"""Execute the notebooks in order, as `make run` and `make publish` do.

A run sets the notebook's parameters by rewriting its "parameters" cell for the execution and
putting the defaults back afterwards, so a published notebook keeps one parameters cell with the
defaults (what Colab users run), no injected cell, and execution counts 1..N.
"""

import json
import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from helpers.files import write_atomic

PARAMETER = re.compile(r"^(?P<name>[A-Z_]+) = .*?(?P<comment>  #.*)?$", re.MULTILINE)


def parameters_cell(notebook) -> "nbformat.NotebookNode":
    """The one code cell tagged "parameters"."""
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"expected one cell tagged 'parameters', found {len(cells)}")
    return cells[0]


def with_values(source: str, values: dict) -> str:
    """`source` with each `NAME = ...` line whose NAME is in `values` set to that value."""
    def replace(match):
        name = match["name"]
        if name not in values:
            return match[0]
        return f"{name} = {values[name]!r}{match['comment'] or ''}"

    return PARAMETER.sub(replace, source)


def execute(path: Path, output: Path, values: dict, cwd: Path, timeout: int | None = None
            ) -> None:
    """Execute the notebook at `path` with `values` for its parameters, from folder `cwd`, and
    write it with outputs to `output` (the parameters cell keeps its default source)."""
    notebook = nbformat.read(path, as_version=4)
    cell = parameters_cell(notebook)
    defaults = cell.source
    cell.source = with_values(defaults, values)
    cwd.mkdir(parents=True, exist_ok=True)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute()
    finally:
        cell.source = defaults
        output.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(output, lambda temporary: nbformat.write(notebook, temporary))


def main(argv: list[str] | None = None) -> None:
    """`python -m tools.notebooks OUT_DIR NAME=VALUE ... -- NOTEBOOK ...`: execute each
    notebook in order into OUT_DIR (which may be notebooks/ itself), from the notebooks folder."""
    argv = sys.argv[1:] if argv is None else argv
    out_dir, rest = Path(argv[0]), argv[1:]
    split = rest.index("--")
    values = {}
    for pair in rest[:split]:
        name, value = pair.split("=", 1)
        values[name] = json.loads(value) if value[:1] in "0123456789-[{\"" else value
    for notebook in map(Path, rest[split + 1:]):
        print(f"== {notebook.name} ({', '.join(f'{k}={v}' for k, v in values.items())})",
              flush=True)
        execute(notebook, out_dir / notebook.name, values, cwd=notebook.parent.resolve())


if __name__ == "__main__":
    main()
