// Validates request bodies against OpenAI's own OpenAPI description (openai-openapi.yaml),
// using Steady (@stdy/cli), a mock server that validates every request against the spec.
//
// Why a server and not a JSON-schema library: Steady resolves the spec's $refs, discriminated
// unions (message roles, content parts) and OpenAPI 3.1 quirks the way OpenAI's own SDK tests
// do, and attributes each failure to a precise path (`body.tools.0.function`).
//
// Usage: node check.mjs <good-bodies-dir> <bad-bodies-dir>
//   every good body must be accepted (200, X-Steady-Request-Valid: true);
//   every bad body must be rejected (400) with an error at the path listed in BAD below,
//   which proves the check can fail, and fails for the reason we think.

import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const SPEC = join(here, "openai-openapi.yaml");

// Known-bad bodies and the spec path each must be rejected at.
const BAD = {
  "missing-messages.json": { path: "body", message: "messages" },
  "tool-without-name.json": { path: "body.tools.0.function", message: "name" },
  "temperature-hot.json": { path: "body.temperature", message: "number" },
  "unknown-role.json": { path: "body.messages.0.role", message: "robot" },
  // For these two Steady blames the message's `role` discriminator: the variant that role
  // selects failed to validate (no `tool_call_id`; an image part without `url`).
  "tool-message-without-call-id.json": { path: "body.messages.1.role", message: "tool" },
  "image-part-without-url.json": { path: "body.messages.0.role", message: "user" },
};

const [goodDir, badDir] = process.argv.slice(2);
if (!goodDir || !badDir) {
  console.error("usage: node check.mjs <good-bodies-dir> <bad-bodies-dir>");
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startSteady() {
  const steadyJs = require.resolve("@stdy/cli/steady.js");
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 40000);
    const child = spawn(process.execPath, [steadyJs, "--host", "127.0.0.1", "-p", String(port), "-q", "--no-color", SPEC], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let log = "";
    child.stdout.on("data", (d) => (log += d));
    child.stderr.on("data", (d) => (log += d));
    let exited = false;
    child.on("exit", () => (exited = true));
    // The spec is 3 MB: parsing takes a few seconds on a slow machine.
    for (let i = 0; i < 300 && !exited; i++) {
      try {
        await fetch(`http://127.0.0.1:${port}/models`);
        return { child, base: `http://127.0.0.1:${port}` };
      } catch {
        await sleep(100);
      }
    }
    child.kill("SIGTERM");
    console.error(`steady did not come up on port ${port}:\n${log}`);
  }
  throw new Error("could not start steady");
}

async function validate(base, body) {
  const res = await fetch(`${base}/chat/completions`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: "Bearer sk-test-not-a-real-key",
      "x-steady-reject-on-error": "true",
    },
    body,
  });
  const text = await res.text();
  let errors = [];
  try {
    errors = JSON.parse(text)?.steady?.errors ?? [];
  } catch {
    // a 200 mock answer may be anything; only rejections carry diagnostics
  }
  return { status: res.status, valid: res.headers.get("x-steady-request-valid"), errors };
}

const fmt = (errors) => errors.map((e) => `    ${e.code} ${e.path}: ${e.message}`).join("\n");

const { child, base } = await startSteady();
let passed = 0;
let failed = 0;
try {
  const good = readdirSync(goodDir).filter((f) => f.endsWith(".json")).sort();
  if (good.length === 0) throw new Error(`no bodies in ${goodDir}`);
  for (const f of good) {
    const r = await validate(base, readFileSync(join(goodDir, f)));
    if (r.status === 200 && r.valid === "true") {
      passed++;
    } else {
      failed++;
      console.log(`FAIL ${f}: expected valid, got HTTP ${r.status} (valid=${r.valid})\n${fmt(r.errors)}`);
    }
  }
  const bad = readdirSync(badDir).filter((f) => f.endsWith(".json")).sort();
  for (const f of bad) {
    const want = BAD[f];
    const r = await validate(base, readFileSync(join(badDir, f)));
    const hit = want && r.errors.some((e) => e.path === want.path && JSON.stringify(e).includes(want.message));
    if (r.status === 400 && hit) {
      passed++;
      console.log(`ok   ${f} rejected at ${want.path}`);
    } else {
      failed++;
      console.log(`FAIL ${f}: expected rejection at ${want?.path ?? "(no expectation listed)"}, got HTTP ${r.status}\n${fmt(r.errors)}`);
    }
  }
  if (bad.length !== Object.keys(BAD).length) {
    failed++;
    console.log(`FAIL bad bodies on disk (${bad.length}) and listed in BAD (${Object.keys(BAD).length}) differ`);
  }
  console.log(`validated ${good.length} adapter bodies and ${bad.length} known-bad bodies against createChatCompletion`);
} finally {
  child.kill("SIGTERM");
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
