"""Scripted faults with real processes on loopback: the TCP proxy (proxy.py), broker and hub
restarts, partitions, latency and a full disk. See docs/faults.md."""
