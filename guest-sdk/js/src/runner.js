// The glue between wasq and a JavaScript task file (guest-sdk/ABI.md, "JavaScript"). It runs
// as a module beside the task file ("task"), whose exported functions are the tasks, and
// leaves what to print and the exit code in globalThis.__wasq_result.
import * as tasks from "task";

const wasq = globalThis.__wasq;

function finish(code, stdout, stderr) {
  globalThis.__wasq_result = { code, stdout, stderr };
}

// The parameter names of a function, from its source: `function f(a, b = 1)`, `(a, b) => …`,
// `a => …`, `async …`. Destructured parameters have no name and take only positional values.
function parameterNames(fn) {
  const source = Function.prototype.toString.call(fn);
  const single = source.match(/^\s*(?:async\s+)?([A-Za-z_$][\w$]*)\s*=>/);
  if (single) return [single[1]];
  const list = source.match(/^[^(]*\(([^)]*)\)/);
  if (!list) return [];
  return list[1]
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .split(",")
    .map((p) => p.replace(/=[\s\S]*$/, "").trim())
    .map((p) => (/^[A-Za-z_$][\w$]*$/.test(p) ? p : p.startsWith("...") ? p : null));
}

function describe(error) {
  if (error instanceof Error) {
    return error.name === "Error" ? error.message : `${error.name}: ${error.message}`;
  }
  return String(error);
}

function fail(message) {
  finish(1, null, message);
}

async function main() {
  const names = Object.keys(tasks)
    .filter((k) => typeof tasks[k] === "function")
    .sort();
  const name = wasq.task;
  const fn = tasks[name];
  if (typeof fn !== "function") {
    return finish(2, null, `unknown task \`${name}\`; this module has: ${names.join(", ")}`);
  }
  let input = {};
  if (wasq.input.trim() !== "") {
    try {
      input = JSON.parse(wasq.input);
    } catch (e) {
      return fail(`stdin is not JSON like {"args":[...],"kwargs":{...}}: ${describe(e)}`);
    }
  }
  if (input === null || typeof input !== "object" || Array.isArray(input)) {
    return fail('stdin is not a JSON object like {"args":[...],"kwargs":{...}}');
  }
  const args = input.args ?? [];
  const kwargs = input.kwargs ?? {};
  if (!Array.isArray(args)) return fail("`args` must be an array");
  if (typeof kwargs !== "object" || Array.isArray(kwargs)) return fail("`kwargs` must be an object");

  const params = parameterNames(fn);
  const rest = params.length > 0 && params[params.length - 1]?.startsWith("...");
  const named = rest ? params.slice(0, -1) : params;
  if (!rest && args.length > named.length) {
    return fail(`task \`${name}\` takes ${named.length} arguments, got ${args.length}`);
  }
  const call = args.slice();
  for (const key of Object.keys(kwargs)) {
    const at = named.indexOf(key);
    if (at < 0) return fail(`unknown argument \`${key}\``);
    if (at < args.length) return fail(`argument \`${key}\` given by position and by name`);
  }
  for (let i = args.length; i < named.length; i++) {
    call.push(named[i] === null ? undefined : kwargs[named[i]]);
  }
  while (call.length > args.length && call[call.length - 1] === undefined) call.pop();

  let result;
  try {
    result = await fn(...call);
  } catch (e) {
    return fail(describe(e));
  }
  let json;
  try {
    json = JSON.stringify(result === undefined ? null : result);
  } catch (e) {
    return fail(`the result of \`${name}\` is not JSON: ${describe(e)}`);
  }
  finish(0, json ?? "null", null);
}

await main();
