// The recall rules file as hostile input (bounded, known keys only, errnos fanotify accepts,
// unique label-safe names), the glob matcher (no regular expression, no blow-up), first match
// wins with a default allow, and the low turns (no low recall while another runs, at most max).
import { test } from "node:test";
import assert from "node:assert/strict";
import type { AccessorInfo } from "../../listener/classify-access.js";
import { LowRecalls } from "../../listener/low-recalls.js";
import { MAX_RULES_BYTES, decideRule, globMatch, parseRecallRules } from "../../listener/recall-rules.js";

const POD = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
const who = (command: string, cgroup = "/user.slice", uid = 1234): AccessorInfo => ({ pid: 9, uid, command, cgroup });

test("the README's example parses: deny with an errno, low with its default max 1", () => {
  const rules = parseRecallRules(
    '[{"name":"scanners","match":{"command":"updatedb*"},"action":"deny","errno":"EPERM"},' +
      '{"name":"backup","match":{"cgroup":"/system.slice/backup.service"},"action":"low"}]',
  );
  assert.deepEqual(rules, [
    { name: "scanners", match: { command: "updatedb*" }, action: "deny", errno: 1 },
    { name: "backup", match: { cgroup: "/system.slice/backup.service" }, action: "low", max: 1 },
  ]);
});

test("first match wins, every key given must match, none matching is the default allow", () => {
  const rules = parseRecallRules(
    JSON.stringify([
      { name: "root-clam", match: { command: "clam*", uid: 0 }, action: "allow" },
      { name: "clam", match: { command: "clam?can" }, action: "deny", errno: "EAGAIN" },
      { name: "pod", match: { pod: POD.toUpperCase() }, action: "low", max: 3 },
    ]),
  );
  assert.equal(decideRule(rules, who("clamscan", "/", 0)).name, "root-clam");
  assert.equal(decideRule(rules, who("clamscan")).name, "clam");
  assert.equal(decideRule(rules, who("clamdscan")).name, "default");
  assert.equal(decideRule(rules, who("cat")).action, "allow");
  const pod = `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${POD.replace(/-/g, "_")}.slice/x.scope`;
  assert.deepEqual(decideRule(rules, who("cat", pod)), { name: "pod", match: { pod: POD }, action: "low", max: 3 });
});

test("globs: * any run (slashes too), ? one character, everything else itself; no regular expression", () => {
  assert.ok(globMatch("updatedb*", "updatedb.plocate"));
  assert.ok(globMatch("/system.slice/*", "/system.slice/backup.service/sub"));
  assert.ok(globMatch("a?c", "abc"));
  assert.ok(!globMatch("a?c", "ac"));
  assert.ok(!globMatch("a.c", "abc"), "a dot is a dot");
  assert.ok(!globMatch("(a+)+$", "aaaa"));
  assert.ok(globMatch("(a+)+$", "(a+)+$"));
  assert.ok(globMatch("*", ""));
  assert.ok(!globMatch("x", ""));
  const started = Date.now();
  assert.ok(!globMatch("*a*a*a*a*a*a*a*a*b", "a".repeat(512)));
  assert.ok(Date.now() - started < 1000, "linear, not exponential");
});

test("a bad file is refused with one line saying where", () => {
  const bad: Array<[string, RegExp]> = [
    ["{}", /not a JSON array/],
    ["[", /not JSON/],
    [
      '[{"name":"a","match":{},"action":"deny","errno":"ENOENT"}]',
      /rule 1 \("a"\): "errno" must be one fanotify can answer with: EPERM/,
    ],
    ['[{"name":"a","match":{},"action":"deny","errno":2}]', /"errno" must be/],
    ['[{"name":"a","match":{"comand":"x"},"action":"deny"}]', /unknown key "comand"/],
    ['[{"name":"a","match":{},"action":"deny","__proto__":{}}]', /unknown key "__proto__"/],
    ['[{"name":"a","action":"deny"}]', /"match": not a JSON object/],
    ['[{"name":"a","match":{},"action":"block"}]', /"action" must be allow, deny or low/],
    ['[{"name":"a","match":{},"action":"allow","errno":"EPERM"}]', /"errno" is for deny only/],
    ['[{"name":"a","match":{},"action":"deny","max":2}]', /"max" is for low only/],
    ['[{"name":"a","match":{},"action":"low","max":0}]', /"max" must be a whole number from 1/],
    ['[{"name":"a","match":{},"action":"low","max":1.5}]', /"max" must be/],
    ['[{"name":"a b","match":{},"action":"allow"}]', /"name" must be/],
    ['[{"name":"default","match":{},"action":"allow"}]', /"name" must be/],
    [
      '[{"name":"a","match":{},"action":"allow"},{"name":"a","match":{},"action":"deny"}]',
      /rule 2: the name "a" is used twice/,
    ],
    ['[{"name":"a","match":{"uid":-1},"action":"allow"}]', /"uid" must be a whole number/],
    ['[{"name":"a","match":{"uid":"0"},"action":"allow"}]', /"uid" must be a whole number/],
    ['[{"name":"a","match":{"pod":"abc"},"action":"allow"}]', /"pod" must be a pod uid/],
    ['[{"name":"a","match":{"command":""},"action":"allow"}]', /"command" must be a glob of 1-64/],
    [`[{"name":"a","match":{"command":"${"x".repeat(65)}"},"action":"allow"}]`, /"command" must be a glob/],
    ['[{"name":"a","match":{"cgroup":"/a\\nb"},"action":"allow"}]', /"cgroup" must be a glob of 1-512 printable/],
    ["[1]", /rule 1: not a JSON object/],
  ];
  for (const [text, re] of bad) assert.throws(() => parseRecallRules(text), re, text);
  const many = JSON.stringify(Array.from({ length: 257 }, (_, i) => ({ name: `r${i}`, match: {}, action: "allow" })));
  assert.throws(() => parseRecallRules(many), /more than 256 rules/);
  assert.throws(() => parseRecallRules(`[${" ".repeat(MAX_RULES_BYTES)}]`), /larger than 65536 bytes/);
});

test("low turns: none while another recall runs, at most max per rule, first come first served, bounded wait", async () => {
  let active = 1;
  const low = new LowRecalls(() => active);
  const got: string[] = [];
  low.wait("backup", { max: 1, waitMs: 10_000 }, (go) => got.push(`b1:${go}`));
  low.wait("backup", { max: 1, waitMs: 10_000 }, (go) => got.push(`b2:${go}`));
  low.wait("scan", { max: 2, waitMs: 30 }, (go) => got.push(`s1:${go}`));
  assert.deepEqual([...got], [], "a normal recall runs");
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual([...got], ["s1:false"], "past its wait");
  active = 0;
  low.pump();
  // b1 starts (and would count in active as the dispatcher admits it); b2 waits for max 1.
  assert.deepEqual([...got], ["s1:false", "b1:true"]);
  active = 1;
  low.done("backup");
  active = 0;
  low.pump();
  assert.deepEqual([...got], ["s1:false", "b1:true", "b2:true"]);
  low.wait("backup", { max: 1, waitMs: 10_000 }, (go) => got.push(`b3:${go}`));
  low.stop();
  assert.deepEqual(got.at(-1), "b3:false");
  assert.equal(low.queued, 0);
});
