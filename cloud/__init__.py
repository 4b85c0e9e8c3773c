"""edgekit cloud side: data, training, export, bundling, the fleet hub, demo and benchmarks.

May import ``edge`` (for the wire contract); ``edge`` never imports this package.
"""
