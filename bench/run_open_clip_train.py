"""Run open_clip's own trainer (open_clip_train.main from the open_clip_torch wheel) with the
project's model configs registered, so `--model hnclip-tiny` means the same model in both
trainers. Usage: python bench/run_open_clip_train.py [open_clip_train.main arguments...]"""
import sys
from pathlib import Path

import open_clip

MODEL_CONFIG_DIR = Path(__file__).resolve().parent.parent / "train" / "model_configs"


def main(argv):
    # open_clip only knows the configs shipped in its wheel; ours live in train/model_configs
    open_clip.add_model_config(MODEL_CONFIG_DIR)
    from open_clip_train.main import main as open_clip_main
    open_clip_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
