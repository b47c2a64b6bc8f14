"""One row of bench/results/default-recipe/: what a run of bench/default_recipe.sh reached (steps, whole-dev BLEU and
chrF, the training loss every 100 steps) and the arguments it was given.
    python bench/default_recipe_row.py NAME OUTPUT_DIR MINUTES [train.py arguments...]"""

import json
import os
import sys

name, out, minutes, args = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
train = json.load(open(os.path.join(out, "train_results.json")))
split = next(split for split in ("test", "validation") if os.path.isfile(os.path.join(out, f"{split}_results.json")))
scores = {key.removeprefix(f"{split}_"): value
          for key, value in json.load(open(os.path.join(out, f"{split}_results.json"))).items()}
logged = [entry for entry in json.load(open(os.path.join(out, "trainer_state.json")))["log_history"] if "loss" in entry]
row = {"name": name, "args": " ".join(args), "minutes": minutes, "steps": train["global_step"],
       "train_runtime": train["train_runtime"],
       # the training loss every 100 steps: runs compared at equal steps where the machine's speed drifted
       "train_loss_by_step": {entry["step"]: round(entry["loss"], 3) for entry in logged if entry["step"] % 100 == 0},
       "bleu_whole_dev": scores["bleu"], "chrf_whole_dev": scores["chrf"]}
os.makedirs("bench/results/default-recipe", exist_ok=True)
with open(f"bench/results/default-recipe/{name}.json", "w") as f:
    json.dump(row, f, indent=1)
print(json.dumps(row))
