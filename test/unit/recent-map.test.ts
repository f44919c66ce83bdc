// The listener's bounded per-inode memory: at most `max` entries, the least recently set
// going first; setting a key again makes it the newest.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RecentMap } from "../../listener/recent-map.js";

test("keeps the most recently set entries only", () => {
  const m = new RecentMap<string, number>(3);
  for (const k of ["a", "b", "c"]) m.set(k, 1);
  m.set("a", 2); // a is the newest now: b goes first
  m.set("d", 1);
  assert.equal(m.size, 3);
  assert.equal(m.get("b"), undefined);
  assert.equal(m.get("a"), 2);
  m.set("e", 1);
  assert.equal(m.get("c"), undefined);
  assert.deepEqual(
    ["a", "d", "e"].map((k) => m.get(k)),
    [2, 1, 1],
  );
  assert.equal(m.delete("d"), true);
  assert.equal(m.size, 2);
  for (let i = 0; i < 10_000; i++) m.set(`k${i}`, i);
  assert.equal(m.size, 3, "bounded whatever is set");
});
