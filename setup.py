"""Only for what pyproject.toml cannot say: the Hydra configs live in conf/ at the top of the
repository (where `accelerate launch train/main.py` and the docs expect them) and are copied
into the wheel as train/conf, where train.config.conf_dir() finds them once installed."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithConf(build_py):
    def run(self):
        super().run()
        src = Path(__file__).parent / "conf"
        dst = Path(self.build_lib) / "train" / "conf"
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))


setup(cmdclass={"build_py": BuildWithConf})
