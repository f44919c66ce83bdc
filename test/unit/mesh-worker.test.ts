// The mesh worker's bounds, without root: it never serves more than MAX_IN_FLIGHT requests at
// once (extra items are answered "overloaded" at once), asks the recall service only for as
// many items as it has free slots, and drops a reply with more items than MAX_ITEMS_PER_TAKE
// unanswered. The recall client is a fake whose FinishAdminWork of a served request is held
// until the test lets it go (so served requests keep their slots).
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import { AdminError } from "../../listener/admin-ops.js";
import { MAX_IN_FLIGHT, MAX_ITEMS_PER_TAKE, MeshWorker } from "../../listener/mesh-worker.js";
import type { MeshWorkerOptions } from "../../listener/mesh-worker.js";
import { AdminOp, AdminWorkItemSchema, TakeAdminWorkResponseSchema } from "../../proto/index.js";
import type { AdminWorkItem } from "../../proto/index.js";

interface Finished {
  workId: bigint;
  ok: boolean;
  errorReason?: string;
}

/** A recall client: takeAdminWork answers from `replies` (then waits for more), finishAdminWork is recorded. */
class FakeMeshRecall {
  readonly asked: number[] = [];
  readonly finished: Finished[] = [];
  private readonly held: Array<() => void> = [];
  private readonly replies: AdminWorkItem[][] = [];
  private waiting: (() => void) | null = null;

  push(items: AdminWorkItem[]): void {
    this.replies.push(items);
    this.waiting?.();
  }

  async takeAdminWork(_waitMs: number, maxItems: number) {
    this.asked.push(maxItems);
    while (this.replies.length === 0) await new Promise<void>((resolve) => (this.waiting = resolve));
    const items = this.replies.shift()!;
    return { ok: true as const, value: create(TakeAdminWorkResponseSchema, { items }) };
  }

  finishAdminWork(req: Finished) {
    this.finished.push(req);
    if (req.errorReason === "overloaded") return Promise.resolve({ ok: true as const, value: {} });
    return new Promise<{ ok: true; value: unknown }>((resolve) =>
      this.held.push(() => resolve({ ok: true, value: {} })),
    );
  }

  releaseOne(): void {
    this.held.shift()?.();
  }

  releaseAll(): void {
    while (this.held.length > 0) this.releaseOne();
  }
}

let nextId = 1n;
function items(n: number): AdminWorkItem[] {
  return Array.from({ length: n }, () =>
    create(AdminWorkItemSchema, { workId: nextId++, op: AdminOp.STATUS, path: "/w/f" }),
  );
}

function worker(recall: FakeMeshRecall): MeshWorker {
  const opts = {
    recall,
    // Every path is one the recall service may not see: the request fails fast, and its answer is held.
    paths: {
      resolve: () => {
        throw new AdminError("not-permitted", "no");
      },
    },
    ops: {},
    views: {},
    modeOf: () => "range",
    channel: { peerCred: () => ({ uid: 4321, gid: 4321, groups: [] }) },
    log: pino({ level: "silent" }),
  } as unknown as MeshWorkerOptions;
  return new MeshWorker(opts);
}

const until = async (cond: () => boolean, what: string) => {
  const deadline = Date.now() + 20_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

test("at most MAX_IN_FLIGHT served at once; extra items answered overloaded at once; polls ask only for free slots", async () => {
  const recall = new FakeMeshRecall();
  const w = worker(recall);
  w.start();
  try {
    await until(() => recall.asked.length === 1, "the first poll");
    assert.equal(recall.asked[0], MAX_IN_FLIGHT);
    recall.push(items(MAX_IN_FLIGHT + 4));
    await until(() => recall.finished.length === MAX_IN_FLIGHT + 4, "every item answered or served");
    assert.equal(w.active, MAX_IN_FLIGHT);
    const overloaded = recall.finished.filter((f) => f.errorReason === "overloaded");
    assert.equal(overloaded.length, 4);
    assert.equal(recall.finished.filter((f) => f.errorReason === "not-permitted").length, MAX_IN_FLIGHT);
    // All slots taken: no poll until one is free, and then for that one only.
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(recall.asked.length, 1);
    recall.releaseOne();
    await until(() => recall.asked.length === 2, "a poll after a slot freed");
    assert.equal(recall.asked[1], 1);
  } finally {
    w.stop();
    recall.releaseAll();
  }
});

test("a reply with more than MAX_ITEMS_PER_TAKE items is dropped unanswered", async () => {
  const recall = new FakeMeshRecall();
  const w = worker(recall);
  w.start();
  try {
    await until(() => recall.asked.length === 1, "the first poll");
    recall.push(items(MAX_ITEMS_PER_TAKE + 1));
    await until(() => recall.asked.length === 2, "the next poll");
    assert.equal(recall.finished.length, 0, "nothing of a broken reply is served or answered");
    assert.equal(w.active, 0);
    recall.push(items(2));
    await until(() => recall.finished.length === 2, "the next reply served");
  } finally {
    w.stop();
    recall.releaseAll();
  }
});
