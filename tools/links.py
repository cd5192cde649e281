"""Where the public repository lives: the one line to change when it moves.

Colab badges and install cells in the notebooks and README are written from these values by
`make links`; a test fails when they disagree.
"""

REPOSITORY = "alexnet-tutorials/alexnet-cats-vs-dogs"
BRANCH = "main"


def repository_url() -> str:
    """The repository's https address (what `pip install git+...` takes)."""
    return f"https://github.com/{REPOSITORY}"


def colab_url(notebook: str) -> str:
    """The address that opens `notebooks/<notebook>` from GitHub in Colab."""
    return f"https://colab.research.google.com/github/{REPOSITORY}/blob/{BRANCH}/notebooks/{notebook}"


def colab_badge(notebook: str) -> str:
    """Markdown for the "Open in Colab" badge of one notebook."""
    image = "https://colab.research.google.com/assets/colab-badge.svg"
    return f"[![Open In Colab]({image})]({colab_url(notebook)})"
