// phivk serve as the official OpenAI client (npm "openai") sees it: models,
// chat whole and streamed, completions whole and streamed, an error as the
// client's APIError. usage: node test_openai.mjs BASE_URL
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.argv[2], apiKey: "test-key", maxRetries: 0, timeout: 120000 });
let passed = 0, failed = 0;
function check(name, cond, detail) {
  if (cond) { passed++; console.log("ok   " + name); }
  else { failed++; console.log("FAIL " + name + (detail === undefined ? "" : ": " + JSON.stringify(detail).slice(0, 400))); }
}

const models = await client.models.list();
check("client_lists_the_model", models.data.length === 1 && models.data[0].id === "tiny", models.data);

const one = await client.models.retrieve("tiny");
check("client_retrieves_the_model", one.id === "tiny" && one.object === "model", one);

const messages = [{ role: "system", content: "be brief" }, { role: "user", content: "hello there" }];
const whole = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 10, temperature: 0 });
check("client_chat_answers", whole.choices[0].message.role === "assistant" && whole.choices[0].message.content.length > 0, whole);
check("client_chat_usage", whole.usage.completion_tokens === 10 && whole.usage.prompt_tokens > 0, whole.usage);

const st = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 10, temperature: 0, stream: true,
                                                  stream_options: { include_usage: true } });
let text = "", finish = null, usage = null, chunks = 0;
for await (const chunk of st) {
  chunks++;
  if (chunk.choices.length) {
    text += chunk.choices[0].delta.content ?? "";
    finish = chunk.choices[0].finish_reason ?? finish;
  }
  if (chunk.usage) usage = chunk.usage;
}
check("client_chat_stream_equals_whole_answer", text === whole.choices[0].message.content, [text, whole.choices[0].message.content]);
check("client_chat_stream_finishes_with_length_and_usage", finish === "length" && usage && usage.completion_tokens === 10 && chunks >= 3,
      { finish, usage, chunks });

const comp = await client.completions.create({ model: "tiny", prompt: "once upon a time", max_tokens: 8, temperature: 0 });
check("client_completion_answers", comp.object === "text_completion" && comp.choices[0].finish_reason === "length", comp);
let ctext = "";
for await (const chunk of await client.completions.create({ model: "tiny", prompt: "once upon a time", max_tokens: 8,
                                                            temperature: 0, stream: true }))
  ctext += chunk.choices[0]?.text ?? "";
check("client_completion_stream_equals_whole_answer", ctext === comp.choices[0].text, [ctext, comp.choices[0].text]);

try {
  await client.chat.completions.create({ model: "no-such-model", messages, max_tokens: 2 });
  check("client_unknown_model_is_an_api_error", false);
} catch (e) {
  check("client_unknown_model_is_an_api_error", e instanceof OpenAI.APIError && e.status === 404 && e.code === "model_not_found",
        { status: e.status, code: e.code, message: e.message });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
