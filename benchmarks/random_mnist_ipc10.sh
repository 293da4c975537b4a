#!/usr/bin/env bash
# Random real images, MNIST IPC 10, evaluated with the full protocol (DSA, 1000 epochs,
# 3 fresh ConvNet-3 models). Also checks that two distills with one seed are byte-identical.
# Usage: SECUREDD_DATA=/path/to/datasets benchmarks/random_mnist_ipc10.sh [OUTDIR]
set -euo pipefail
: "${SECUREDD_DATA:?point SECUREDD_DATA at the folder holding MNIST/raw}"
out=${1:-benchmarks/results/random_mnist_ipc10}
mkdir -p "$out"
securedd distill --dataset mnist --method random --ipc 10 --seed 0 --out "$out/a.safetensors" --quiet
securedd distill --dataset mnist --method random --ipc 10 --seed 0 --out "$out/b.safetensors" --quiet
if cmp -s "$out/a.safetensors" "$out/b.safetensors"; then echo "same seed: byte-identical artifacts"; else echo "same seed: artifacts DIFFER"; exit 1; fi
sha256sum "$out/a.safetensors"
/usr/bin/time -v securedd evaluate "$out/a.safetensors" --runs 3 --json "$out/eval.json" 2> "$out/time.txt"
grep -E "Elapsed|Maximum resident" "$out/time.txt"
