#!/usr/bin/env node
// KServe v2 JSON inference with Node's built-in fetch (Node >= 18) against deconvd's up1d.
//   node examples/node_fetch.mjs [BASE_URL]   (default http://127.0.0.1:8080)
// Prints: up1d [1, 4, 1] 2.5 0.5 5.75 2.5
const base = (process.argv[2] ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
const request = {
  inputs: [{ name: "input", shape: [1, 2, 2], datatype: "FP32", data: [1, 2, 3, 4] }],
};
const r = await fetch(`${base}/v2/models/up1d/infer`, {
  method: "POST",
  headers: { "Content-Type": "application/json" },
  body: JSON.stringify(request),
  signal: AbortSignal.timeout(10_000),
});
const res = await r.json();
if (!r.ok) {
  console.error(`HTTP ${r.status}: ${res.error}`);
  process.exit(1);
}
const out = res.outputs[0];
console.log("up1d", `[${out.shape.join(", ")}]`, out.data.join(" "));
