// Checks guichet with the official openai npm client (what a Node product
// would use) and validates /openapi.json against the OpenAPI 3.1 schema.
// Usage: node check.mjs BASE_URL API_KEY   (guichet in front of guichet-sim)
import assert from "node:assert/strict";
import OpenAI from "openai";
import { Validator } from "@seriousme/openapi-schema-validator";

const [base, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL: base + "/v1", apiKey, maxRetries: 0 });

const models = await client.models.list();
assert.ok(models.data.some((m) => m.id === "chat"), "chat model listed");

const answer = await client.chat.completions.create({
  model: "chat",
  messages: [{ role: "user", content: "Bonjour" }],
});
assert.match(answer.choices[0].message.content, /^guichet-sim simulated answer:/);
assert.ok(answer.usage.completion_tokens > 0);

const stream = await client.chat.completions.create({
  model: "chat",
  stream: true,
  messages: [{ role: "user", content: "Bonjour" }],
});
let text = "", usage = null;
for await (const chunk of stream) {
  text += chunk.choices[0]?.delta?.content ?? "";
  if (chunk.usage) usage = chunk.usage;
}
assert.match(text, /^guichet-sim simulated answer:/);
assert.ok(usage && usage.completion_tokens > 0, "stream ends with usage");

const emb = await client.embeddings.create({ model: "embed", input: ["un", "deux"] });
assert.equal(emb.data.length, 2);
assert.ok(emb.data[0].embedding.length > 0, "the SDK decoded its default base64 encoding");

await assert.rejects(
  client.chat.completions.create({ model: "nope", messages: [{ role: "user", content: "x" }] }),
  (err) => err instanceof OpenAI.NotFoundError && /not found/.test(err.message),
);

const spec = await (await fetch(base + "/openapi.json")).json();
const result = await new Validator().validate(spec);
assert.ok(result.valid, "OpenAPI document invalid: " + JSON.stringify(result.errors, null, 1));
assert.equal(spec.openapi, "3.1.0");
console.log("node check: ok");
