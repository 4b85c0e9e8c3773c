"""The ``edgekit train`` command: model architectures, the fit loop and the run directory."""
