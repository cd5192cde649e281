"""Where the public repository lives: the one line to change when it moves; and the release
the install cells pin, the git tag of pyproject.toml's version.

Colab badges and install cells in the notebooks and README are written from these values by
`make links`; a test fails when they disagree.
"""

import tomllib
from pathlib import Path

REPOSITORY = "alexnet-tutorials/alexnet-cats-vs-dogs"
BRANCH = "main"
# The helpers the committed outputs were made with, so that a later commit cannot change what a
# learner runs next to them: with each new reference run, raise the version in pyproject.toml,
# run `make links`, and tag the commit of its outputs v<version>.
RELEASE = "v" + tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text()
                              )["project"]["version"]


def repository_url() -> str:
    """The repository's https address."""
    return f"https://github.com/{REPOSITORY}"


def install_url() -> str:
    """What `pip install` takes for the helpers of RELEASE: git+<repository>@<tag>."""
    return f"git+{repository_url()}@{RELEASE}"


def colab_url(notebook: str) -> str:
    """The address that opens `notebooks/<notebook>` from GitHub in Colab."""
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/notebooks/{notebook}"


def colab_badge(notebook: str) -> str:
    """Markdown for the "Open in Colab" badge of one notebook."""
    image = "https://colab.research.google.com/assets/colab-badge.svg"
    return f"[![Open In Colab]({image})]({colab_url(notebook)})"
