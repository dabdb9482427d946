"""A separate virtualenv for img2dataset 1.47.0 (about 800 MB of dependencies whose pins must
not touch the project's .venv), built once into <repo>/.venv-img2dataset (git-ignored).

    python bench/img2dataset_env.py        # builds it if needed, prints the img2dataset path

Used by tests/test_data_img2dataset.py, so `make test` does this set-up itself (about a
minute the first time, instant afterwards)."""
import fcntl
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv-img2dataset"
SPEC = "img2dataset==1.47.0"
STAMP = VENV / ".installed"


class Unavailable(RuntimeError):
    """PyPI cannot be reached: the only reason a caller may skip."""


def pypi_reachable(timeout=10) -> bool:
    try:
        urllib.request.urlopen("https://pypi.org/simple/img2dataset/", timeout=timeout).close()
        return True
    except Exception:
        return False


def ensure() -> Path:
    """-> path of the img2dataset executable, building the venv if it is missing or half-built."""
    exe = VENV / "bin" / "img2dataset"
    if STAMP.exists() and STAMP.read_text().strip() == SPEC and exe.exists():
        return exe
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(ROOT / ".venv-img2dataset.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test sessions must not build it at once
        if STAMP.exists() and STAMP.read_text().strip() == SPEC and exe.exists():
            return exe
        shutil.rmtree(VENV, ignore_errors=True)
        # img2dataset 1.47.0 does not run on Python 3.13+: use this interpreter (3.11 here)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(VENV)], check=True)
        pip = subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", SPEC],
                             capture_output=True, text=True)
        if pip.returncode != 0:
            if not pypi_reachable():
                raise Unavailable(f"PyPI is unreachable, cannot install {SPEC}")
            raise RuntimeError(f"pip install {SPEC} into {VENV} failed:\n{pip.stderr[-3000:]}")
        STAMP.write_text(SPEC + "\n")
    return exe


if __name__ == "__main__":
    print(ensure())
