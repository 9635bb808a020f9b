"""The transaction generator: simulated card traffic with injected attacks, and CSV replay."""
