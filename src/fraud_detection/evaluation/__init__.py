"""Detection quality: ground truth (injected attacks, labelled fraud) against the alerts the detector raised."""
