"""Inference runtimes behind one protocol; see base.py."""
