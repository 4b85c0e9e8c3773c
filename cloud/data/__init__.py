"""Dataset loading, validation, splitting, fingerprinting and drift reference statistics.

Everything here is numpy-only (plus Pillow and scikit-learn's bundled data), so it can be
tested without TensorFlow; the trainer in ``cloud.train`` builds on it.
"""
