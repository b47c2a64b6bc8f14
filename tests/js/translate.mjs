// Greedy translation with transformers.js, the way a web page or a Node program would run an exported model:
//     node translate.mjs <bundle folder> <fp32|q8> <max_new_tokens> < sentences.json  ->  [{"ids": [...], "text": "..."}]
// The folder is what `hf-seq2seq export-onnx --for-web` writes. Offline: files are read from disk, never the Hub.
import path from 'node:path';
import fs from 'node:fs';
import { env, AutoTokenizer, AutoModelForSeq2SeqLM } from '@huggingface/transformers';

const [, , folder, dtype = 'fp32', maxNewTokens = '64'] = process.argv;
// An absolute path: a relative "a/b" reads as a Hub repository name.
const modelDir = path.resolve(folder);
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.useFSCache = false;

const sentences = JSON.parse(fs.readFileSync(0, 'utf-8'));
const tokenizer = await AutoTokenizer.from_pretrained(modelDir);
const model = await AutoModelForSeq2SeqLM.from_pretrained(modelDir, { device: 'cpu', dtype });
const results = [];
for (const sentence of sentences) {  // one at a time: a batch keeps the tokens after a row's </s>
    const output = await model.generate({ ...(await tokenizer(sentence)), max_new_tokens: Number(maxNewTokens),
                                          num_beams: 1, do_sample: false });
    const ids = Array.from(output.tolist()[0], Number);
    results.push({ ids, text: tokenizer.decode(ids, { skip_special_tokens: true }) });
}
console.log(JSON.stringify(results));
await model.dispose();
