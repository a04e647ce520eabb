#!/usr/bin/env bash
# The main job on the built-in default, for a newcomer without weights:
#  1. generate the synthetic `mini` model once (real DeepSeek-V3.2 attention shapes, random
#     weights, ~0.5 GB FP8) under models/,
#  2. run `dsinfer run` on a long built-in prompt (this repo's DSA kernel notes, ~3,000 tokens)
#     with DSA, then the same with dense attention, and print both timing summaries,
#  3. show where DSA's advantage goes at long context: the decode kernels at 4K .. 128K tokens,
#     then the whole model's decode per token at 4K, 16K and 64K tokens of (synthetic) context.
# The synthetic model's text is meaningless: it shows the engine's speed, not its wisdom.
set -euo pipefail
build=${1:-build}
bin="$build/bin/dsinfer"
models=${DSINFER_MODELS:-models}
model="$models/mini-v32-fp8"

"$bin" info
echo
if [ ! -f "$model/config.json" ]; then
  echo "== generating the synthetic mini model into $model (once)"
  "$bin" gen-model --preset mini -o "$model" --force
fi

prompt=$(mktemp)
trap 'rm -f "$prompt"' EXIT
{
  echo "Summarize the following design notes of an inference engine in three sentences."
  echo
  # A fixed-size excerpt (~3,000 tokens of the mini model's small vocabulary), so the job's
  # length does not grow with the docs.
  head -c 5000 docs/dsa-kernels.md
} > "$prompt"

for attention in sparse dense; do
  echo
  echo "== dsinfer run, attention = $attention (synthetic model: the text is gibberish)"
  "$bin" run -m "$model" -f "$prompt" -n 32 --temp 0 --attention "$attention"
done

echo
echo "== DSA vs dense attention per decoded token at long context (kernels, 671B attention shapes)"
"$bin" bench kernels --sweep -t "$(nproc)" 2>/dev/null | sed -n '/^DSA vs dense/,/^\(probe \|name \)/p' | sed '/^\(probe \|name \)/d'

echo
echo "== the same in the whole model (mini, synthetic caches at these depths): decode per token"
"$bin" bench model -m "$model" -t "$(nproc)" --decode-depths 4096,16384,65536 2>/dev/null |
  sed -n '/^DSA vs dense/,/^$/p'
echo
echo "With a real checkpoint: $bin run -m /path/to/DeepSeek-V3.2-Exp"
