#!/usr/bin/env bash
# The quality runs of bench/README.md: the `small` preset for 60 minutes of training on 2 CPU cores, on Tatoeba
# and on Multi30k, then sacreBLEU/chrF of beam-4 translations of the whole dev/val set. Results and curves are
# copied to bench/results/. Run from the project root, with ../shared/data beside it:
#     bash bench/quality.sh tatoeba     # or: multi30k
set -euo pipefail
corpus=${1:-tatoeba}
case "$corpus" in
  tatoeba)  data=../shared/data/tatoeba-en-fr; train=$data/train.tsv; dev=$data/dev.tsv ;;
  multi30k) data=../shared/data/multi30k-en-fr; train=$data/train.en; dev=$data/val.en ;;
  *) echo "usage: bash bench/quality.sh tatoeba|multi30k" >&2; exit 2 ;;
esac
out=outputs/$corpus-small
# --validation_file with --max_eval_samples 1000: the BLEU-against-time curve, every 1000 steps;
# --test_file: the same dev set, in full, scored once at the end.
python train.py --train_file "$train" --validation_file "$dev" --test_file "$dev" --max_eval_samples 1000 \
  --preset small --vocab_size 8000 --max_train_minutes 60 --num_train_epochs 100 \
  --per_device_train_batch_size 128 --learning_rate 1.5e-3 --warmup_steps 800 \
  --eval_strategy steps --eval_steps 1000 --save_strategy steps --save_steps 1000 \
  --logging_steps 100 --disable_tqdm true --output_dir "$out" 2>&1 | tee "$out.log"
mkdir -p bench/results
cp "$out/curve.json" "bench/results/$corpus-small-curve.json"
cp "$out/test_results.json" "bench/results/$corpus-small-dev.json"
cp "$out/training_curve.png" "bench/results/$corpus-small-curve.png"
