"""Diagnostic classifiers (probes) for spatial information in an open_clip image tower.

After Pantazopoulos et al., "Lost in Space: Probing Fine-grained Spatial Understanding in
Vision and Language Resamplers", 2024: light probes on frozen features versus probes trained
jointly with the backbone; tasks Region Cell Matching, box regression (GIoU + L1) and VSR-style
spatial-relation classification. Entry point: `python -m train.probe.main`."""
