#!/usr/bin/env bash
# Fill a wheels folder for bench/gpu_check.sh, on a machine with the package index:
#
#   bench/gpu_wheels.sh [DIR]          # default DIR: gpu_wheels
#
# Resolves bench/gpu_requirements.txt with all its dependencies for CPython 3.12 on x86-64
# Linux (pip's resolver, binary wheels only), drops what the GPU machine already has (torch,
# torchvision, triton, the nvidia-* CUDA libraries, accelerate, transformers, timm), downloads
# the rest, and builds hnclip's own wheel from this checkout. Copy DIR and the checkout to
# the GPU machine, then: bench/gpu_check.sh --wheels DIR
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-gpu_wheels}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
mkdir -p "$DIR"
TARGET=(--python-version 3.12 --implementation cp --abi cp312 --platform manylinux2014_x86_64
        --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 --platform any)
# antlr4-python3-runtime (hydra's parser) is published as a source archive only: build it
"$PY" -m pip wheel -q --no-deps -w "$DIR" antlr4-python3-runtime==4.9.3
grep -v '^antlr4' bench/gpu_requirements.txt > "$DIR/.requirements"
"$PY" -m pip install -q --dry-run --ignore-installed --only-binary=:all: "${TARGET[@]}" \
    --target "$DIR/.unused" --report "$DIR/.report.json" -r "$DIR/.requirements"
"$PY" - "$DIR" <<'PYEOF'
import json, re, sys
d = sys.argv[1]
have = re.compile(r"^(torch|torchvision|triton|nvidia-.*|accelerate|transformers|timm|tokenizers)$")
pins = [f"{i['metadata']['name']}=={i['metadata']['version']}" for i in json.load(open(f"{d}/.report.json"))["install"]
        if not have.match(i["metadata"]["name"].lower())]
open(f"{d}/.pins", "w").write("\n".join(pins) + "\n")
print(f"{len(pins)} packages to download")
PYEOF
"$PY" -m pip download -q -d "$DIR" --only-binary=:all: "${TARGET[@]}" --no-deps -r "$DIR/.pins"
"$PY" -m pip wheel -q --no-deps -w "$DIR" .
rm -rf "$DIR/.requirements" "$DIR/.report.json" "$DIR/.pins" "$DIR/.unused"
echo "wheels for bench/gpu_check.sh in $DIR: $(ls "$DIR" | wc -l) files"
