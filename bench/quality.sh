#!/usr/bin/env bash
# The quality runs of bench/README.md: a fixed budget of training on 2 CPU cores (60 minutes, 30 for SST-2), then
# the task's metric on the whole dev/val set. Results and curves are copied to bench/results/. Run from the project
# root, with ../shared/data beside it, and nothing else running (the budget is wall clock):
#     bash bench/quality.sh tatoeba | multi30k [args...]      # translation, the small preset, then the average of
#                                                              # the last 5 checkpoints; train.py arguments after
#                                                              # the run name override the recipe's, and NAME=...
#                                                              # names the run (outputs/NAME, results)
#     NAME=tatoeba-dropout0 AVERAGE=10 bash bench/quality.sh tatoeba --config_overrides dropout=0.0  # the best
#                                                              # Tatoeba hour measured (bench/README.md)
#     NAME=tatoeba-v2000-4p2-d0 AVERAGE=10 bash bench/quality.sh tatoeba --vocab_size 2000 \
#         --config_overrides encoder_layers=4,decoder_layers=2,dropout=0.0  # the fastest translator at Marian's BLEU
#                                                              # or above: 1.89x its generate() speed (bench/README.md)
#     [NAME=...] bash bench/quality.sh dialogsum               # summarisation
#     bash bench/quality.sh squad                              # question answering (generated answers)
#     [MINUTES=n] bash bench/quality.sh squad-span             # question answering (a span reader)
#     bash bench/quality.sh squad-vectors                      # Word2Vec on SQuAD's training text for the span reader
#     [MINUTES=n] bash bench/quality.sh squad-selfpretrain [--bf16]  # denoising SQuAD's training text (20 min), then
#                                                              # START=outputs/squad-selfpretrained ... squad-span
#     [MINUTES=n] [NAME=...] bash bench/quality.sh sst2 [random|word2vec|translator|pretrained]  # sentiment (30 min);
#                                                              # word2vec: vectors by `bash bench/quality.sh vectors`;
#                                                              # translator: starts from outputs/tatoeba-small (or
#                                                              # $TRANSLATOR); pretrained: from outputs/pretrained (or $START)
#     [MINUTES=n] bash bench/quality.sh pretrain               # denoising pretraining (60 min) on the English books
#                                                              # and the text of the tasks' training splits, streamed
#     START=outputs/pretrained bash bench/quality.sh dialogsum|squad-span  # the task's recipe from a pretrained
#                                                              # start (run named NAME-pretrained)
#     NAME=dialogsum-small-lr3e-4 START=outputs/pretrained bash bench/quality.sh dialogsum --learning_rate 3e-4
#                                                              # ... at a lower rate (measured: no better)
set -euo pipefail
run=${1:-tatoeba}
variant=${2:-random}
data=../shared/data
common=(--preset small --num_train_epochs 100 --eval_strategy steps --save_strategy steps --logging_steps 100
        --disable_tqdm true)
squad_text() {
  # SQuAD's text as lines, for the recipes that learn from it before the span reader: outputs/squad-text/train.txt
  # (every training context once and its questions) and dev.txt (dev contexts, only to score on, never to train on).
  mkdir -p outputs/squad-text
  python - <<'EOF'
import json
for split in ("train", "dev"):
    with open(f"outputs/squad-text/{split}.txt", "w", encoding="utf-8") as out:
        for article in json.load(open(f"../shared/data/squad-v1.1/{split}.json", encoding="utf-8"))["data"]:
            for paragraph in article["paragraphs"]:
                out.write(paragraph["context"].replace("\n", " ") + "\n")
                if split == "train":
                    out.writelines(qa["question"].strip() + "\n" for qa in paragraph["qas"])
EOF
}
case "$run" in
  tatoeba|multi30k)
    if [ "$run" = tatoeba ]; then train=$data/tatoeba-en-fr/train.tsv; dev=$data/tatoeba-en-fr/dev.tsv; corpus=()
    else train=$data/multi30k-en-fr/train.en; dev=$data/multi30k-en-fr/val.en
      # 29,000 pairs, about 25 passes in the hour: at dropout 0.1 val BLEU peaks near the 18th and then falls
      # (overfitting); at 0.3 it still rises at the stop (+2.4 BLEU, bench/README.md). A --config_overrides given
      # after the run name replaces this one: repeat dropout=0.3 in it.
      corpus=(--config_overrides dropout=0.3); fi
    name=${NAME:-$run-small}
    average=${AVERAGE:-5}
    # --validation_file with --max_eval_samples 1000: the BLEU-against-time curve, every 1000 steps;
    # --test_file: the same dev set, in full, scored once at the end.
    # A checkpoint every 500 steps, the last 5 (AVERAGE=n: n) kept: after training they are averaged (Vaswani et
    # al., 2017) into outputs/NAME-avg5 (-avgN), scored on the whole dev set too.
    args=(--train_file "$train" --validation_file "$dev" --test_file "$dev" --max_eval_samples 1000
          --vocab_size 8000 --max_train_minutes 60 --per_device_train_batch_size 128 --learning_rate 1.5e-3
          --warmup_steps 800 --eval_steps 1000 --save_steps 500 --save_total_limit "$average"
          --dataset_label "$run-en-fr" "${corpus[@]}") ;;
  pretrain)
    # BART's denoising on the 911,182 paragraphs of English novels, interleaved (in proportion to size) with the text
    # of the English tasks' training splits: SQuAD contexts and questions, DialogSum dialogues and summaries, SST-2
    # sentences (never a dev split). Streamed: nothing is held but a shuffle buffer. Passages of 256 tokens, 32 a
    # step (8 a forward pass: the peak memory stays under 2 GiB), no dropout (one pass over the data cannot
    # over-fit); the tokenizer (8,000 BPE tokens and <mask>) is trained on the first 300,000 lines of the stream.
    name=${NAME:-pretrained}
    mkdir -p outputs/pretrain-text
    python - <<'EOF'
import json
data = "../shared/data"
with open("outputs/pretrain-text/tasks-train.txt", "w", encoding="utf-8") as out:
    for article in json.load(open(f"{data}/squad-v1.1/train.json", encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            out.write(paragraph["context"].replace("\n", " ") + "\n")
            out.writelines(qa["question"].strip() + "\n" for qa in paragraph["qas"])
    for line in open(f"{data}/dialogsum/train.jsonl", encoding="utf-8"):
        record = json.loads(line)
        out.write(record["dialogue"].strip() + "\n" + record["summary"].strip() + "\n")
    for i, line in enumerate(open(f"{data}/sst2/train.tsv", encoding="utf-8")):
        if i:
            out.write(line.split("\t")[0].strip() + "\n")
EOF
    args=(--task denoising --train_file $data/english-books/train.txt.gz,outputs/pretrain-text/tasks-train.txt --streaming
          --validation_file $data/english-books/dev.txt.gz --max_eval_samples 2000 --max_source_length 256
          --test_file $data/english-books/dev.txt.gz
          --tokenizer_train_samples 300000 --vocab_size 8000 --max_steps 1000000 --max_train_minutes "${MINUTES:-60}"
          --per_device_train_batch_size 8 --gradient_accumulation_steps 4 --per_device_eval_batch_size 16
          --learning_rate 1e-3 --warmup_steps 500 --label_smoothing_factor 0 --config_overrides dropout=0.0
          --eval_steps 250 --save_steps 250 --save_total_limit 1 --dataset_label english-books) ;;
  dialogsum)
    name=${NAME:-dialogsum-small}
    args=(--task summarization --train_file $data/dialogsum/train.jsonl --validation_file $data/dialogsum/dev.jsonl
          --test_file $data/dialogsum/dev.jsonl --max_eval_samples 100 --max_source_length 512 --max_target_length 128
          --vocab_size 8000 --max_train_minutes 60 --max_tokens_per_batch 6000 --learning_rate 1e-3
          --warmup_steps 300 --eval_steps 300 --save_steps 300 --dataset_label dialogsum) ;;
  squad)
    name=squad-small
    args=(--task question-answering --train_file $data/squad-v1.1/train.json --validation_file $data/squad-v1.1/dev.json
          --test_file $data/squad-v1.1/dev.json --max_eval_samples 500 --max_source_length 384 --max_target_length 32
          --vocab_size 8000 --max_train_minutes 60 --max_tokens_per_batch 6000 --learning_rate 1e-3
          --warmup_steps 300 --eval_steps 400 --save_steps 400 --dataset_label squad-v1.1) ;;
  squad-span)
    # The span reader (BART's head), from scratch; windows of 256 tokens (most contexts fit one) sharing 96.
    name=${NAME:-squad-span-small}
    args=(--task extractive-question-answering --train_file $data/squad-v1.1/train.json
          --validation_file $data/squad-v1.1/dev.json --test_file $data/squad-v1.1/dev.json --max_eval_samples 500
          --max_seq_length 256 --doc_stride 96 --vocab_size 8000 --max_train_minutes "${MINUTES:-60}"
          --per_device_train_batch_size 32 --per_device_eval_batch_size 64 --learning_rate 1e-3 --warmup_steps 300
          --label_smoothing_factor 0 --eval_steps 400 --save_steps 400 --save_total_limit 1 --dataset_label squad-v1.1) ;;
  squad-vectors)
    # Word2Vec on SQuAD's own training text (contexts and questions; no other data, no dev split), in the vocabulary
    # of a tokenizer trained on the same text: the span reader's embeddings then start knowing which tokens are
    # alike, which its hour from random does not teach it (bench/README.md). Then:
    # NAME=squad-span-small-word2vec MINUTES=<60 less this step's minutes> bash bench/quality.sh squad-span \
    #   --tokenizer_name outputs/squad-vectors/tokenizer --init_embeddings outputs/squad-vectors/word2vec.txt
    squad_text
    python - <<'EOF'
from hf_seq2seq.vocabulary import train_tokenizer
lines = open("outputs/squad-text/train.txt", encoding="utf-8").read().splitlines()
train_tokenizer(lines, vocab_size=8000).save_pretrained("outputs/squad-vectors/tokenizer")
EOF
    hf-seq2seq train-vectors --text outputs/squad-text/train.txt --output outputs/squad-vectors/word2vec.txt \
      --size 256 --tokenizer outputs/squad-vectors/tokenizer --epochs 5 --workers 2
    exit 0 ;;
  squad-selfpretrain)
    # Self-pretraining (Krishna et al., 2023, "Downstream datasets make surprisingly good pretraining corpora"):
    # BART's denoising on SQuAD's own training text (its 17,768 contexts and 82,211 questions; no other data, no dev
    # split) for the first 20 minutes of the span reader's hour, annealed to zero by the clock: what a pretrained
    # start gives the span reader (+6.55 F1 from the books), on the task's own text; 20 minutes stop before the copy
    # transition that the books pretraining passed (bench/README.md). Then, in the rest of the hour (the run is
    # named squad-span-small-squad-selfpretrained):
    # START=outputs/squad-selfpretrained MINUTES=<60 less this step's minutes> bash bench/quality.sh squad-span \
    #   --bf16 --config_overrides dropout=0
    # --bf16 (after the run name, both steps) only where the CPU has bfloat16 units: `python bench/bf16_training.py`.
    name=${NAME:-squad-selfpretrained}
    squad_text
    args=(--task denoising --train_file outputs/squad-text/train.txt --validation_file outputs/squad-text/dev.txt
          --test_file outputs/squad-text/dev.txt --max_eval_samples 300 --max_predict_samples 300
          --max_source_length 256 --vocab_size 8000 --max_train_minutes "${MINUTES:-20}" --lr_decay_over_time_budget true
          --per_device_train_batch_size 32 --per_device_eval_batch_size 32 --learning_rate 1e-3 --warmup_steps 200
          --label_smoothing_factor 0 --config_overrides dropout=0.0 --eval_steps 200 --save_steps 200
          --save_total_limit 1 --dataset_label squad-v1.1) ;;
  vectors)
    # Word2Vec on the English text of ../shared/data (SST-2 train sentences included, SST-2 dev not), in the
    # vocabulary of a tokenizer trained on SST-2 train, so that the vectors cover the model's own tokens.
    mkdir -p outputs/sst2-vectors
    python - <<'EOF'
import json, os
data = "../shared/data"
with open("outputs/sst2-vectors/english.txt", "w", encoding="utf-8") as out:
    for line in open(f"{data}/tatoeba-en-fr/train.tsv", encoding="utf-8"):
        out.write(line.split("\t")[0].strip() + "\n")
    for line in open(f"{data}/multi30k-en-fr/train.en", encoding="utf-8"):
        out.write(line.strip() + "\n")
    for line in open(f"{data}/dialogsum/train.jsonl", encoding="utf-8"):
        record = json.loads(line)
        out.write(record["dialogue"].replace("\n", " ") + "\n" + record["summary"] + "\n")
    for article in json.load(open(f"{data}/squad-v1.1/train.json", encoding="utf-8"))["data"]:
        for paragraph in article["paragraphs"]:
            out.write(paragraph["context"] + "\n")
    for i, line in enumerate(open(f"{data}/sst2/train.tsv", encoding="utf-8")):
        if i:
            out.write(line.split("\t")[0].strip() + "\n")
EOF
    python - <<'EOF'
import itertools
from hf_seq2seq.vocabulary import train_tokenizer
lines = (line.split("\t")[0].strip() for line in itertools.islice(open("../shared/data/sst2/train.tsv", encoding="utf-8"), 1, None))
train_tokenizer(lines, vocab_size=8000).save_pretrained("outputs/sst2-vectors/tokenizer")
EOF
    hf-seq2seq train-vectors --text outputs/sst2-vectors/english.txt --output outputs/sst2-vectors/word2vec.txt \
      --size 256 --tokenizer outputs/sst2-vectors/tokenizer --epochs 5 --workers 2
    exit 0 ;;
  sst2)
    name=${NAME:-sst2-$variant}
    args=(--task text-classification --train_file $data/sst2/train.tsv --validation_file $data/sst2/dev.tsv
          --test_file $data/sst2/dev.tsv --class_names negative,positive --max_source_length 128
          --max_train_minutes "${MINUTES:-30}" --per_device_train_batch_size 64 --learning_rate 5e-4 --warmup_steps 500
          --label_smoothing_factor 0 --config_overrides dropout=0.3 --eval_steps 1000 --save_steps 1000
          --save_total_limit 1 --dataset_label sst2)
    case "$variant" in
      random) args+=(--vocab_size 8000) ;;
      word2vec) args+=(--tokenizer_name outputs/sst2-vectors/tokenizer --init_embeddings outputs/sst2-vectors/word2vec.txt) ;;
      translator) args+=(--model_name_or_path "${TRANSLATOR:-outputs/tatoeba-small}") ;;
      pretrained) args+=(--model_name_or_path "${START:-outputs/pretrained}") ;;
      *) echo "usage: bash bench/quality.sh sst2 random|word2vec|translator|pretrained" >&2; exit 2 ;;
    esac ;;
  *) echo "usage: bash bench/quality.sh tatoeba|multi30k|dialogsum|squad|squad-span|squad-vectors|squad-selfpretrain|vectors|sst2|pretrain [variant]" >&2; exit 2 ;;
esac
if [ -n "${START:-}" ] && [ "$run" != sst2 ]; then
  # The same recipe from a pretrained start: its vocabulary and weights, the recipe's dropout (0.1 unless it sets one).
  name=$name-$(basename "$START")
  args+=(--model_name_or_path "$START")
  [[ " ${args[*]} " == *" dropout="* ]] || args+=(--config_overrides dropout=0.1)
fi
# train.py arguments after the run name (after the variant for sst2) override the recipe's: e.g.
# `MINUTES=60 START=outputs/pretrained bash bench/quality.sh squad-span --resume_from_checkpoint last` carries a run
# that stopped at 30 minutes on to 60 (the clock continues its curve's).
if [ "$run" = sst2 ]; then args+=("${@:3}"); else args+=("${@:2}"); fi
out=outputs/$name
mkdir -p outputs bench/results
# The peak resident memory of the run, beside its results.
/usr/bin/time -f "peak resident memory %M KB, %e s" -o "bench/results/$name-time.txt" \
  python train.py "${common[@]}" "${args[@]}" --output_dir "$out" 2>&1 | tee "$out.log"
cp "$out/curve.json" "bench/results/$name-curve.json"
cp "$out/test_results.json" "bench/results/$name-dev.json"
cp "$out/train_results.json" "bench/results/$name-train.json"
cp "$out/training_curve.png" "bench/results/$name-curve.png"
if [ -n "${average:-}" ]; then
  hf-seq2seq average --run "$out" --last "$average" --output "$out-avg$average"
  hf-seq2seq evaluate --model "$out-avg$average" --test_file "$dev" --num_beams 4 > "bench/results/$name-avg$average-dev.json"
fi
