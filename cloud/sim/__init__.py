"""`edgekit simulate`: a fleet of lightweight simulated agents for scale tests."""
