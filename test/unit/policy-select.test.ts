// The policy engine's rules, without root: use and bytes to free as df computes them, "last
// used", --exclude globs, what is left alone, and the bounded least-recently-used selection.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LruCandidates, bytesToFree, decide, excluder, lastUsedMs, usedPct } from "../../cli/policy-select.js";
import type { Candidate, FileFacts } from "../../cli/policy-select.js";

test("use is (blocks - bfree) / (blocks - bfree + bavail), and the bytes to free reach the low watermark", () => {
  // 1000 blocks, 100 free of which 50 reserved for root: 900 used of 950.
  const fs = { bsize: 4096, blocks: 1000, bfree: 100, bavail: 50 };
  assert.equal(Math.round(usedPct(fs) * 100) / 100, 94.74);
  // 75% of 950 is 712 blocks (floored): 188 blocks to free.
  assert.equal(bytesToFree(fs, 75), 188 * 4096);
  assert.equal(bytesToFree(fs, 95), 0);
});

test("last used is the latest of access, modification and recall", () => {
  const t = { atimeNs: 5_000_000n, mtimeNs: 7_000_000n };
  assert.equal(lastUsedMs(t, undefined), 7);
  assert.equal(lastUsedMs(t, 9), 9);
  assert.equal(lastUsedMs({ atimeNs: 11_000_000n, mtimeNs: 7_000_000n }, 9), 11);
});

test("--exclude: relative to DIR unless it starts with /; * within a name, ** across directories", () => {
  const ex = excluder(["*.tmp", "keep/**", "/abs/dir/*.log", "**/cache/*"]);
  assert.ok(ex("a.tmp", "/w/a.tmp"));
  assert.ok(!ex("sub/a.tmp", "/w/sub/a.tmp"));
  assert.ok(ex("keep/x/y", "/w/keep/x/y"));
  assert.ok(ex("z.log", "/abs/dir/z.log"));
  assert.ok(!ex("dir/z.log", "/abs/dir/sub/z.log"));
  assert.ok(ex("cache/f", "/w/cache/f"));
  assert.ok(ex("a/b/cache/f", "/w/a/b/cache/f"));
  assert.ok(!ex("a.tmpx", "/w/a.tmpx"));
  assert.ok(excluder(["a+b(c).dat"])("a+b(c).dat", "/w/a+b(c).dat"));
});

const rules = { minSize: 1024 * 1024, archiveAfterMs: 3_600_000 };
const NOW = 10_000_000_000;

function facts(
  over: Partial<{
    size: number;
    mtimeMs: number;
    excluded: boolean;
    pinned: boolean;
    state: ReturnType<FileFacts["state"]>;
  }>,
): {
  f: FileFacts;
  asked: string[];
} {
  const asked: string[] = [];
  const v = {
    size: 2 * 1024 * 1024,
    mtimeMs: NOW - 7_200_000,
    excluded: false,
    pinned: false,
    state: "resident" as const,
    ...over,
  };
  const f: FileFacts = {
    size: v.size,
    mtimeMs: v.mtimeMs,
    excluded: () => (asked.push("excluded"), v.excluded),
    pinned: () => (asked.push("pinned"), v.pinned),
    state: () => (asked.push("state"), v.state),
  };
  return { f, asked };
}

test("small, excluded and pinned files are left alone, and their xattrs are not even read", () => {
  const small = facts({ size: 1024 * 1024 - 1 });
  assert.deepEqual(decide(small.f, rules, NOW), { kind: "skip", why: "small" });
  assert.deepEqual(small.asked, []);
  const excluded = facts({ excluded: true });
  assert.deepEqual(decide(excluded.f, rules, NOW), { kind: "skip", why: "excluded" });
  assert.deepEqual(excluded.asked, ["excluded"]);
  const pinned = facts({ pinned: true, state: "archived" });
  assert.deepEqual(decide(pinned.f, rules, NOW), { kind: "skip", why: "pinned" });
  assert.deepEqual(pinned.asked, ["excluded", "pinned"]);
});

test("archived files are candidates; resident and dirty ones idle past --archive-after are archived; stubs are not touched", () => {
  assert.equal(decide(facts({ state: "archived" }).f, rules, NOW).kind, "candidate");
  assert.equal(decide(facts({ state: "resident" }).f, rules, NOW).kind, "archive");
  assert.equal(decide(facts({ state: "dirty" }).f, rules, NOW).kind, "archive");
  assert.deepEqual(decide(facts({ mtimeMs: NOW - 60_000 }).f, rules, NOW), { kind: "skip", why: "recent" });
  assert.deepEqual(decide(facts({ state: "released" }).f, rules, NOW), { kind: "skip", why: "stub" });
  assert.deepEqual(decide(facts({ state: "partial" }).f, rules, NOW), { kind: "skip", why: "stub" });
  assert.deepEqual(decide(facts({ state: "corrupt" }).f, rules, NOW), { kind: "skip", why: "corrupt" });
});

function cand(path: string, lastUsed: number, allocated = 100): Candidate {
  return { path, dev: 1, ino: lastUsed, size: allocated, allocated, lastUsedMs: lastUsed };
}

test("the heap keeps exactly the least recently used candidates that cover the need, oldest first", () => {
  const lru = new LruCandidates(250);
  for (const [p, t] of [
    ["e", 50],
    ["a", 10],
    ["d", 40],
    ["b", 20],
    ["f", 60],
    ["c", 30],
  ] as const)
    lru.offer(cand(p, t));
  assert.deepEqual(
    lru.oldestFirst().map((c) => c.path),
    ["a", "b", "c"],
  );
  assert.equal(lru.coveredBytes, 300);
});

test("the heap stays bounded over many offers, and a need of 0 keeps nothing", () => {
  const lru = new LruCandidates(1000);
  for (let i = 100_000; i > 0; i--) lru.offer(cand(`f${i}`, i));
  assert.deepEqual(
    lru.oldestFirst().map((c) => c.lastUsedMs),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  );
  const none = new LruCandidates(0);
  none.offer(cand("x", 1));
  assert.deepEqual(none.oldestFirst(), []);
});

test("a big old file and small newer ones: the kept set still covers the need, ties broken by path", () => {
  const lru = new LruCandidates(150);
  lru.offer(cand("small1", 5, 100));
  lru.offer(cand("big", 1, 1000));
  lru.offer(cand("small2", 6, 100));
  assert.deepEqual(
    lru.oldestFirst().map((c) => c.path),
    ["big"],
  );
  const tie = new LruCandidates(150);
  for (const p of ["y", "x", "z"]) tie.offer(cand(p, 7, 100));
  assert.deepEqual(
    tie.oldestFirst().map((c) => c.path),
    ["x", "y"],
  );
});

test("not enough candidates: all are kept, and they cover less than the need", () => {
  const lru = new LruCandidates(10_000);
  lru.offer(cand("a", 2));
  lru.offer(cand("b", 1));
  assert.deepEqual(
    lru.oldestFirst().map((c) => c.path),
    ["b", "a"],
  );
  assert.ok(lru.coveredBytes < 10_000);
});
