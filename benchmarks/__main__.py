"""`python -m benchmarks`: every benchmark, one table, one final JSON line (see run_all)."""

from benchmarks.run_all import main

main()
