// The per-inode queue: one inode's work in order, different inodes concurrently, errors contained.
import { test } from "node:test";
import assert from "node:assert/strict";
import { InodeQueue } from "../../listener/inode-queue.js";

test("the inode queue runs one inode's work in order and different inodes concurrently", async () => {
  const q = new InodeQueue();
  const log: string[] = [];
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => (release = r));
  const a1 = q.run("a", async () => {
    await gate;
    log.push("a1");
  });
  const a2 = q.run("a", async () => {
    log.push("a2");
  });
  const b1 = q.run("b", async () => {
    log.push("b1");
  });
  await b1;
  assert.deepEqual(log, ["b1"]);
  assert.equal(q.size, 2);
  release();
  await Promise.all([a1, a2]);
  assert.deepEqual(log, ["b1", "a1", "a2"]);
  await q
    .run("a", async () => {
      throw new Error("x");
    })
    .catch(() => {});
  await q.run("a", async () => log.push("after-error"));
  assert.equal(log.at(-1), "after-error");
});
