// The recall service's Prometheus text: families, labels from closed sets, the histogram's
// cumulative buckets, the listener's and the policy's reported figures; and the Grafana dashboard in deploy/
// queries only metrics that exist.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { MAX_RULES } from "../../proto/accessor.js";
import { RecallMetrics, listenerRuleCounts } from "../../recall-service/metrics.js";
import { MAX_POLICY_DIRS } from "../../recall-service/policy-metrics.js";

function rendered(): string {
  const m = new RecallMetrics(() => 1234);
  m.recordRecall("allow", "recalled", 0.02, 4096);
  m.recordRecall("allow", "recalled", 3, 8192);
  m.recordRecall("deny", "timeout", 31, 0);
  m.recordAdmin("restore", "OK");
  m.recordAdmin("restore", "OK");
  m.recordAdmin("archive", "PERMISSION_DENIED");
  m.listener = {
    pid: 7,
    eventsTotal: 10,
    ignoreMarkedFiles: 3,
    queueDepth: 1,
    verdicts: [{ verdict: "deny", reason: "overloaded", count: 2 }],
    rules: [
      { rule: "scanners", action: "deny", count: 4 },
      { rule: "default", action: "allow", count: 0 },
    ],
    receivedMs: Date.now(),
  };
  m.policy.record({
    passes: 1,
    lastPassSeconds: 0.5,
    actions: [{ action: "release", count: 2, bytes: 3000 }],
    filesystems: [{ dir: "/srv/data", usedRatio: 0.8 }],
  });
  return m.render();
}

test("counters, histogram and listener figures render in the text format", () => {
  const text = rendered();
  assert.match(text, /^fanrecall_recalls_total\{verdict="allow",reason="recalled"\} 2$/m);
  assert.match(text, /^fanrecall_recalls_total\{verdict="deny",reason="timeout"\} 1$/m);
  assert.match(text, /^fanrecall_recall_bytes_written_total 12288$/m);
  assert.match(text, /^fanrecall_store_bytes_fetched_total 1234$/m);
  assert.match(text, /^fanrecall_recall_duration_seconds_bucket\{le="0.025"\} 1$/m);
  assert.match(text, /^fanrecall_recall_duration_seconds_bucket\{le="5"\} 2$/m);
  assert.match(text, /^fanrecall_recall_duration_seconds_bucket\{le="\+Inf"\} 3$/m);
  assert.match(text, /^fanrecall_recall_duration_seconds_count 3$/m);
  assert.match(text, /^fanrecall_admin_requests_total\{op="restore",code="OK"\} 2$/m);
  assert.match(text, /^fanrecall_admin_requests_total\{op="archive",code="PERMISSION_DENIED"\} 1$/m);
  assert.match(text, /^fanrecall_listener_up 1$/m);
  assert.match(text, /^fanrecall_listener_events_total 10$/m);
  assert.match(text, /^fanrecall_listener_verdicts_total\{verdict="deny",reason="overloaded"\} 2$/m);
  assert.match(text, /^fanrecall_recall_rule_decisions_total\{rule="scanners",action="deny"\} 4$/m);
  assert.match(text, /^fanrecall_recall_rule_decisions_total\{rule="default",action="allow"\} 0$/m);
  assert.match(text, /^fanrecall_policy_actions_total\{action="release"\} 2$/m);
  assert.match(text, /^fanrecall_policy_bytes_total\{action="release"\} 3000$/m);
  assert.match(text, /^fanrecall_policy_passes_total 1$/m);
  assert.match(text, /^fanrecall_policy_pass_duration_seconds 0.5$/m);
  assert.match(text, /^fanrecall_filesystem_used_ratio\{dir="\/srv\/data"\} 0.8$/m);
  for (const line of text.trimEnd().split("\n"))
    assert.match(line, /^(# (HELP|TYPE) fanrecall_\w+ .+|fanrecall_\w+(\{[^}]*\})? [0-9.e+-]+)$/, line);
});

test("a listener that stopped reporting is down", () => {
  const m = new RecallMetrics(() => 0);
  assert.match(m.render(), /^fanrecall_listener_up 0$/m);
  m.listener = {
    pid: 1,
    eventsTotal: 0,
    ignoreMarkedFiles: 0,
    queueDepth: 0,
    verdicts: [],
    rules: [],
    receivedMs: Date.now() - 60_000,
  };
  assert.match(m.render(), /^fanrecall_listener_up 0$/m);
});

test("the Grafana dashboard queries only metrics the recall service exports", () => {
  const dashboard = readFileSync(new URL("../../deploy/grafana/fanrecall-dashboard.json", import.meta.url), "utf8");
  const exported = new Set([...rendered().matchAll(/^# TYPE (fanrecall_\w+) (\w+)$/gm)].map((m) => m[1]));
  const used = new Set([...dashboard.matchAll(/fanrecall_\w+/g)].map((m) => m[0]));
  assert.ok(used.size > 0);
  for (const name of used) {
    const family = name.replace(/_(bucket|sum|count)$/, "");
    assert.ok(exported.has(name) || exported.has(family), `the dashboard queries ${name}, which is not exported`);
  }
});

test("counters with known labels exist at 0 before anything happened (rate() sees the first one)", () => {
  const text = new RecallMetrics(() => 0).render();
  assert.match(text, /^fanrecall_recalls_total\{verdict="allow",reason="recalled"\} 0$/m);
  assert.match(text, /^fanrecall_recalls_total\{verdict="deny",reason="checksum-mismatch"\} 0$/m);
  assert.match(text, /^fanrecall_admin_requests_total\{op="status",code="OK"\} 0$/m);
  assert.match(text, /^fanrecall_policy_actions_total\{action="archive"\} 0$/m);
  assert.match(text, /^fanrecall_policy_bytes_total\{action="release"\} 0$/m);
  assert.match(text, /^fanrecall_policy_passes_total 0$/m);
  assert.doesNotMatch(text, /fanrecall_policy_pass_duration_seconds|fanrecall_filesystem_used_ratio/);
});

test("the policy's reports add up and are bounded label values: known actions, clean absolute dirs, at most MAX_POLICY_DIRS", () => {
  const m = new RecallMetrics(() => 0);
  const report = (over: object) =>
    m.policy.record({ passes: 1, lastPassSeconds: 2, actions: [], filesystems: [], ...over });
  report({ actions: [{ action: "archive", count: 3, bytes: 30 }] });
  report({
    actions: [
      { action: "archive", count: 1, bytes: 5 },
      { action: "delete", count: 9, bytes: 9 },
    ],
  });
  report({
    actions: [
      { action: "release", count: -1, bytes: 1 },
      { action: "release", count: 2 ** 60, bytes: 1 },
    ],
  });
  report({
    filesystems: [
      { dir: "/a", usedRatio: 0.5 },
      { dir: "relative", usedRatio: 0.5 },
      { dir: "/a/../etc", usedRatio: 0.5 },
      { dir: '/x"}\nfanrecall_evil 1', usedRatio: 0.5 },
      { dir: "/b", usedRatio: 7 },
    ],
  });
  const text = m.render();
  assert.match(text, /^fanrecall_policy_actions_total\{action="archive"\} 4$/m);
  assert.match(text, /^fanrecall_policy_bytes_total\{action="archive"\} 35$/m);
  assert.match(text, /^fanrecall_policy_actions_total\{action="release"\} 0$/m);
  assert.match(text, /^fanrecall_policy_passes_total 4$/m);
  assert.deepEqual(
    [...text.matchAll(/^fanrecall_filesystem_used_ratio\{dir="([^"]*)"\}/gm)].map((x) => x[1]),
    ["/a"],
  );
  assert.doesNotMatch(text, /action="delete"|evil/);
  const many = Array.from({ length: 3 * MAX_POLICY_DIRS }, (_, i) => ({ dir: `/d${i}`, usedRatio: 0.1 }));
  report({ filesystems: many.slice(0, MAX_POLICY_DIRS) });
  report({ filesystems: many.slice(MAX_POLICY_DIRS) });
  assert.equal([...m.render().matchAll(/^fanrecall_filesystem_used_ratio/gm)].length, MAX_POLICY_DIRS);
});

test("rule counts the listener reports are bounded label values: rule-name shape, known action, each once, at most MAX_RULES + 1", () => {
  const rows = listenerRuleCounts([
    { rule: "backup", action: "low", count: 2 },
    { rule: "backup", action: "deny", count: 9 },
    { rule: 'x"}\nfanrecall_evil 1', action: "deny", count: 1 },
    { rule: "default", action: "allow", count: 5 },
    { rule: "odd", action: "maybe", count: 1 },
  ]);
  assert.deepEqual(rows, [
    { rule: "backup", action: "low", count: 2 },
    { rule: "default", action: "allow", count: 5 },
  ]);
  const many = Array.from({ length: 1000 }, (_, i) => ({ rule: `r${i}`, action: "allow", count: 1 }));
  assert.equal(listenerRuleCounts(many).length, MAX_RULES + 1);
});
