"""Benchmarks behind the series' claims: `python -m benchmarks --data-dir PETIMAGES` (or
`make bench DATA_DIR=...`) measures the input pipeline, mixed precision and peak memory on real
photos; each module also runs on its own (`python -m benchmarks.pipeline --help`).

Every benchmark prints a readable table and, as its last line, one JSON object.
"""

from helpers.environment import load_keras

load_keras()  # before any benchmark module imports keras (via helpers) or tensorflow
