"""sharehub's benchmark suite: the hub against plain baselines, measured in the same run.

Each scenario runs in a fresh subprocess (so its peak RSS is its own) and measures the hub and its
baseline interleaved, several repetitions each, so drift of the machine hits both alike. ``python -m bench``
runs the suite and writes ``BENCHMARKS.md`` and a chart; ``python -m bench scale`` runs the large
publish → projection → query run. Benchmarks only: nothing here is imported by the hub itself.
"""
