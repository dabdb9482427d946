"""Diagnostic classifiers (probes) for spatial information in an open_clip image tower.

After paper 003 ("Lost in Space"): light probes on frozen features versus probes trained
jointly with the backbone; tasks Region Cell Matching, box regression (GIoU + L1) and VSR-style
spatial-relation classification. Entry point: `python -m train.probe.main`."""
