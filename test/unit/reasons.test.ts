// One closed set of reasons (proto/reasons.ts): every name has its own wire value and comes
// back from it; every access outcome is allow or a deny with an errno fanotify accepts; every
// reason string written in the sources (log fields, admin errors, metrics, tests) is in the
// set; and every entry of the table keeps the comment that justifies its outcome.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import {
  FAN_DENY_ERRNOS,
  REASONS,
  REASON_NAMES,
  Reason,
  accessOutcome,
  grpcCodeOf,
  isReasonName,
  reasonFromProto,
  reasonToProto,
} from "../../proto/index.js";
import { FAILURE_POLICY } from "../../listener/failure-policy.js";
import { listenerVerdicts } from "../../recall-service/metrics.js";
import { codeForReason } from "../../recall-service/mesh-relay.js";

const root = new URL("../../", import.meta.url).pathname;
const SUCCESS = new Set([
  "recalled",
  "resident",
  "populated",
  "released",
  "self",
  "archived",
  "verified",
  "stored",
  "deleted",
]);
const ALLOWED = new Set(["recalled", "resident", "populated", "self", "stub-changed"]);

test("every reason has its own wire value, and each wire value names one reason", () => {
  const protos = REASON_NAMES.map((name) => reasonToProto(name));
  assert.equal(new Set(protos).size, protos.length, "two reasons share a wire value");
  for (const name of REASON_NAMES) {
    assert.match(name, /^[a-z]+(-[a-z]+)*$/, `${name} is not a kebab-case name`);
    assert.notEqual(reasonToProto(name), Reason.UNSPECIFIED, name);
    assert.equal(reasonFromProto(reasonToProto(name)), name);
  }
  const wire = Object.values(Reason).filter((v): v is Reason => typeof v === "number" && v !== Reason.UNSPECIFIED);
  assert.deepEqual(
    [...wire].sort((a, b) => a - b),
    [...protos].sort((a, b) => a - b),
    "a wire value has no name",
  );
  assert.equal(reasonFromProto(Reason.UNSPECIFIED), "protocol-error");
  assert.equal(reasonFromProto(999 as Reason), "protocol-error");
});

test("fail-closed: only 'the data is there' allows; every deny has an errno fanotify accepts", () => {
  const accepted = new Set<number>(FAN_DENY_ERRNOS);
  assert.deepEqual(
    [...accepted].sort((a, b) => a - b),
    [1, 5, 11, 16, 26, 28, 122],
  );
  for (const name of REASON_NAMES) {
    const o = accessOutcome(name);
    if (ALLOWED.has(name)) assert.deepEqual(o, { verdict: "allow", errno: 0 }, name);
    else {
      assert.equal(o.verdict, "deny", name);
      assert.ok(accepted.has(o.errno), `${name}: errno ${o.errno}`);
    }
  }
  assert.equal(accessOutcome("overloaded").errno, 11);
  assert.equal(accessOutcome("no-space").errno, 28);
  // A rule's own errno answers instead (the dispatcher); the table's is the common choice.
  assert.equal(accessOutcome("denied-by-rule").errno, 1);
  const own = new Set(["overloaded", "no-space", "denied-by-rule"]);
  const eio = REASON_NAMES.filter((n) => !ALLOWED.has(n) && !own.has(n));
  for (const name of eio) assert.equal(accessOutcome(name).errno, 5, name);
});

test("the listener's failure table is the shared table, nothing more", () => {
  assert.deepEqual(Object.keys(FAILURE_POLICY).sort(), [...REASON_NAMES].sort());
  for (const name of REASON_NAMES) assert.equal(FAILURE_POLICY[name], REASONS[name].access);
});

test("a mesh admin failure is never OK: success reasons and unknown names are INTERNAL", () => {
  for (const name of REASON_NAMES) {
    assert.equal(grpcCodeOf(name) === status.OK, SUCCESS.has(name), name);
    assert.notEqual(codeForReason(name), status.OK, name);
  }
  assert.equal(codeForReason("not-found"), status.NOT_FOUND);
  assert.equal(codeForReason("no-such-reason"), status.INTERNAL);
});

test("metrics: listener counts outside the set become protocol-error, with the table's verdict", () => {
  const rows = listenerVerdicts([
    { reason: "recalled", count: 3 },
    { reason: "queue-full", count: 2 },
    { reason: "protocol-error", count: 1 },
  ]);
  assert.deepEqual(rows, [
    { verdict: "allow", reason: "recalled", count: 3 },
    { verdict: "deny", reason: "protocol-error", count: 3 },
  ]);
});

function sources(dir: string): Array<{ file: string; text: string }> {
  return readdirSync(join(root, dir))
    .filter((f) => f.endsWith(".ts") && f !== "reasons.test.ts")
    .map((f) => ({ file: `${dir}/${f}`, text: readFileSync(join(root, dir, f), "utf8") }));
}

test("every reason written in the sources is in the set", () => {
  const patterns = [
    /\b(?:reason|errorReason)\s*:\s*"([^"]*)"/g,
    /\breason(?:\s*:\s*\w+)?\s*=\s*"([^"]*)"/g,
    /\bAdminError\(\s*"([^"]*)"/g,
    /\bRecallError\(\s*"([^"]*)"/g,
    /\bthis\.(?:count|finish|answer)\((?:[\w.]+,\s*)?"([^"]*)"\)/g,
  ];
  const dirs = ["listener", "recall-service", "cli", "holder", "proto", "test/unit", "test/e2e", "test/helpers"];
  let seen = 0;
  for (const { file, text } of dirs.flatMap(sources)) {
    for (const re of patterns) {
      for (const m of text.matchAll(re)) {
        seen++;
        assert.ok(isReasonName(m[1]), `${file}: "${m[1]}" is not a reason of proto/reasons.ts`);
      }
    }
  }
  assert.ok(seen > 40, `only ${seen} reason strings found: the scan is broken`);
});

test("every entry of the table keeps the comment that justifies its outcome", () => {
  const text = readFileSync(join(root, "proto/reasons.ts"), "utf8");
  const block = text.slice(
    text.indexOf("export const REASONS"),
    text.indexOf("\n};", text.indexOf("export const REASONS")),
  );
  const lines = block.split("\n");
  const named: string[] = [];
  lines.forEach((line, i) => {
    const m = /^ {2}"?([a-z-]+)"?: \{/.exec(line);
    if (!m) return;
    named.push(m[1]);
    assert.match(lines[i - 1], /^ {2}\/\/ \S/, `${m[1]} has no justifying comment`);
  });
  assert.deepEqual(named.sort(), [...REASON_NAMES].sort());
});
