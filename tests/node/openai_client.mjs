// The official OpenAI client (npm `openai`, installed here by .ci/setup) against `deltakit serve`:
// list the models, one greedy completion, the same streamed. Prints one JSON line for
// tests/cli/serve_cli.py to check. Usage: node openai_client.mjs BASE_URL MODEL PROMPT_IDS_JSON
import OpenAI from "openai";

const [baseURL, model, promptJson] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused" });
const prompt = JSON.parse(promptJson);

const models = [];
for await (const m of client.models.list()) models.push(m.id);
const done = await client.completions.create({ model, prompt, max_tokens: 10, temperature: 0 });
const streamed = [];
const stream = await client.completions.create({ model, prompt, max_tokens: 10, temperature: 0, stream: true });
for await (const chunk of stream) streamed.push(...(chunk.choices[0]?.token_ids ?? []));
console.log(JSON.stringify({
  models,
  tokens: done.choices[0].token_ids,
  finish_reason: done.choices[0].finish_reason,
  usage: done.usage,
  streamed,
}));
