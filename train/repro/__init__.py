"""A miniature reproduction of SPEC's Table 3 on a CPU: pre-train a small CLIP on
object-name captions, fine-tune it four ways with the real trainer, evaluate on held-out
SPEC-layout sets and object zero-shot. Entry point: launch/repro_mini.sh."""
