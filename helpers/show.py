from helpers.plots import show_source as show_source  # where the notebooks import it from
