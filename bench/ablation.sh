#!/usr/bin/env bash
# One lever of the Tatoeba recipe, measured by a short run: today's `small` recipe (bench/quality.sh tatoeba) plus the
# arguments given, trained for MINUTES on 2 CPU cores (alone on the machine), then sacreBLEU of beam-4 translations of
# the first 2,000 dev lines. Rank the levers with these, then confirm the winners with one-hour runs.
#     bash bench/ablation.sh NAME MINUTES [train.py arguments...]
#     bash bench/ablation.sh lr3e-3 12 --learning_rate 3e-3
set -euo pipefail
name=$1; minutes=$2; shift 2
data=../shared/data/tatoeba-en-fr
out=outputs/ablation-$name
mkdir -p outputs bench/results/ablations
python train.py --train_file $data/train.tsv --validation_file $data/dev.tsv --test_file $data/dev.tsv \
  --max_eval_samples 1000 --max_predict_samples 2000 --preset small --vocab_size 8000 --num_train_epochs 100 \
  --per_device_train_batch_size 128 --learning_rate 1.5e-3 --warmup_steps 800 --eval_strategy no \
  --save_strategy no --logging_steps 100 --disable_tqdm true --max_train_minutes "$minutes" \
  --dataset_label tatoeba-en-fr --output_dir "$out" "$@" > "$out.log" 2>&1
python - "$name" "$out" "$minutes" "$@" <<'PY'
import json, sys
name, out, minutes, args = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
test, train = json.load(open(f"{out}/test_results.json")), json.load(open(f"{out}/train_results.json"))
row = {"name": name, "args": " ".join(args), "minutes": minutes, "steps": train["global_step"],
       "bleu_first_2000_dev": test["test_bleu"], "chrf": test["test_chrf"], "train_runtime": train["train_runtime"]}
json.dump(row, open(f"bench/results/ablations/{name}.json", "w"), indent=1)
print(json.dumps(row))
PY
