"""hnclip trainer: fine-tune open_clip models with L_clip + lambda * L_hn."""
