#!/usr/bin/env bash
# A candidate for the recipe of `python train.py` (configs/default.json): train.py on the Tatoeba pairs that ship with
# the package for MINUTES of wall clock on 2 CPU cores (alone on the machine), no evaluation during training, a
# checkpoint every 100 steps (the last 6 kept, for `hf-seq2seq average`), then sacreBLEU/chrF of beam-4 translations of
# the whole dev set (8,152 lines). One JSON row per run in bench/results/default-recipe/.
#     bash bench/default_recipe.sh NAME MINUTES [train.py arguments...]
#     bash bench/default_recipe.sh E 6.5 --preset small-deep-encoder --vocab_size 2000 \
#         --config_overrides dropout=0.0,encoder_ffn_dim=512,decoder_ffn_dim=512 --per_device_train_batch_size 128 \
#         --learning_rate 2e-3 --warmup_steps 400 --lr_decay_over_time_budget true
set -euo pipefail
name=$1; minutes=$2; shift 2
out=outputs/recipe/$name
mkdir -p outputs/recipe bench/results/default-recipe
python train.py --dataset_name builtin:tatoeba --num_train_epochs 100 --eval_strategy no --save_strategy steps \
  --save_steps 100 --save_total_limit 6 --logging_steps 50 --disable_tqdm true --max_train_minutes "$minutes" \
  --output_dir "$out" "$@" > "$out.log" 2>&1
python bench/default_recipe_row.py "$name" "$out" "$minutes" "$@"
