"""Show a helper's source in a notebook when the reader should see the code itself."""

import inspect

from IPython.display import Code, display


def show_source(obj) -> None:
    """Display the source of a function or class from helpers, syntax-highlighted."""
    display(Code(inspect.getsource(obj), language="python"))
