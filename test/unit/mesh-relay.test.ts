// The mesh relay between the TLS admin API and the listener's long poll: requests reach a
// polling listener, results and errors come back with the right gRPC codes, nothing waits
// past its deadline, and without a listener a request fails at once. Bounds: a poll gets no
// more items than the listener asked for (nor MAX_BATCH), and at most MAX_WAITING wait.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { status } from "@grpc/grpc-js";
import { AdminFileStatusSchema, AdminOp, FinishAdminWorkRequestSchema, RpcError } from "../../proto/index.js";
import { MAX_BATCH, MAX_WAITING, MeshRelay, codeForReason } from "../../recall-service/mesh-relay.js";

const never = new AbortController().signal;

function finish(workId: bigint, ok: boolean, errorReason = "", state = "archived") {
  return create(FinishAdminWorkRequestSchema, {
    workId,
    ok,
    errorReason,
    message: ok ? "" : `failed: ${errorReason}`,
    ...(ok ? { status: create(AdminFileStatusSchema, { path: "/w/f", state, size: 10n }) } : {}),
  });
}

async function rejectsWith(p: Promise<unknown>, code: status): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof RpcError && err.code === code);
}

describe("mesh relay", () => {
  test("without a polling listener a request fails at once with UNAVAILABLE", async () => {
    const relay = new MeshRelay();
    await rejectsWith(relay.submit(AdminOp.STATUS, "/w/f", Date.now() + 5_000), status.UNAVAILABLE);
  });

  test("a polling listener gets the request and its result goes back to the caller", async () => {
    const relay = new MeshRelay();
    const poll = relay.take(5_000, never);
    const answer = relay.submit(AdminOp.RESTORE, "/w/f", Date.now() + 5_000);
    const items = await poll;
    assert.equal(items.length, 1);
    assert.equal(items[0].op, AdminOp.RESTORE);
    assert.equal(items[0].path, "/w/f");
    relay.finish(finish(items[0].workId, true));
    const s = await answer;
    assert.equal(s.state, "archived");
    assert.equal(s.size, 10n);
  });

  test("requests queued between polls are delivered by the next poll, in order", async () => {
    const relay = new MeshRelay();
    assert.deepEqual(await relay.take(10, never), []);
    const a = relay.submit(AdminOp.STATUS, "/w/a", Date.now() + 5_000);
    const b = relay.submit(AdminOp.ARCHIVE, "/w/b", Date.now() + 5_000);
    const items = await relay.take(5_000, never);
    assert.deepEqual(
      items.map((i) => i.path),
      ["/w/a", "/w/b"],
    );
    relay.finish(finish(items[1].workId, false, "not-permitted"));
    relay.finish(finish(items[0].workId, false, "invalid-path"));
    await rejectsWith(b, status.PERMISSION_DENIED);
    await rejectsWith(a, status.INVALID_ARGUMENT);
  });

  test("a request the listener does not finish in time fails with DEADLINE_EXCEEDED, and a late result is ignored", async () => {
    const relay = new MeshRelay();
    const poll = relay.take(5_000, never);
    const answer = relay.submit(AdminOp.STATUS, "/w/f", Date.now() + 100);
    const [item] = await poll;
    await rejectsWith(answer, status.DEADLINE_EXCEEDED);
    relay.finish(finish(item.workId, true)); // no throw, no effect
  });

  test("close fails every waiting request with UNAVAILABLE", async () => {
    const relay = new MeshRelay();
    void relay.take(5_000, never);
    const queued = relay.submit(AdminOp.STATUS, "/w/f", Date.now() + 5_000);
    relay.close();
    await rejectsWith(queued, status.UNAVAILABLE);
  });

  test("listener reasons map to a closed set of gRPC codes", () => {
    assert.equal(codeForReason("not-found"), status.NOT_FOUND);
    assert.equal(codeForReason("stub-corrupt"), status.FAILED_PRECONDITION);
    assert.equal(codeForReason("timeout"), status.DEADLINE_EXCEEDED);
    assert.equal(codeForReason("store-unavailable"), status.UNAVAILABLE);
    assert.equal(codeForReason("anything-else"), status.INTERNAL);
    assert.equal(codeForReason("not-permitted"), status.PERMISSION_DENIED);
    assert.equal(codeForReason("overloaded"), status.RESOURCE_EXHAUSTED);
  });

  test("a poll gets at most the items the listener asked for, never more than MAX_BATCH; the rest wait", async () => {
    const relay = new MeshRelay();
    assert.deepEqual(await relay.take(10, never), []);
    const answers = Array.from({ length: MAX_WAITING }, (_, i) =>
      relay.submit(AdminOp.STATUS, `/w/${i}`, Date.now() + 5_000),
    );
    const first = await relay.take(5_000, never, 3);
    assert.deepEqual(
      first.map((i) => i.path),
      ["/w/0", "/w/1", "/w/2"],
    );
    // While the listener works on what it took, it still counts as connected (it polls when it has room).
    await new Promise((r) => setTimeout(r, 10));
    const unbounded = await relay.take(5_000, never, 0);
    assert.equal(unbounded.length, MAX_BATCH);
    const greedy = await relay.take(5_000, never, 1_000_000);
    assert.equal(greedy.length, MAX_BATCH);
    assert.equal(greedy[0].path, `/w/${3 + MAX_BATCH}`);
    await rejectsWith(relay.submit(AdminOp.STATUS, "/w/more", Date.now() + 5_000), status.RESOURCE_EXHAUSTED);
    for (const item of [...first, ...unbounded, ...greedy]) relay.finish(finish(item.workId, true));
    relay.close();
    await Promise.allSettled(answers);
  });

  test("a listener that just finished its items counts as connected until its next poll", async (t) => {
    t.mock.timers.enable({ apis: ["Date", "setTimeout"] });
    const relay = new MeshRelay();
    const poll = relay.take(5_000, never, 1);
    const a = relay.submit(AdminOp.RESTORE, "/w/a", Date.now() + 600_000);
    const [item] = await poll;
    t.mock.timers.tick(60_000);
    relay.finish(finish(item.workId, true));
    await a;
    let refused: unknown = null;
    const b = relay.submit(AdminOp.STATUS, "/w/b", Date.now() + 600_000).catch((err: unknown) => (refused = err));
    await new Promise((r) => setImmediate(r));
    assert.equal(refused, null, "queued for the listener's next poll, not refused");
    const [next] = await relay.take(5_000, never, 1);
    relay.finish(finish(next.workId, true));
    await b;
  });

  test("a listener busy with taken items still counts as connected after the poll grace", async (t) => {
    t.mock.timers.enable({ apis: ["Date", "setTimeout"] });
    const relay = new MeshRelay();
    const poll = relay.take(5_000, never, 1);
    const a = relay.submit(AdminOp.RESTORE, "/w/a", Date.now() + 600_000);
    const [item] = await poll;
    t.mock.timers.tick(60_000);
    let refused: unknown = null;
    const b = relay.submit(AdminOp.STATUS, "/w/b", Date.now() + 600_000).catch((err: unknown) => (refused = err));
    await new Promise((r) => setImmediate(r));
    assert.equal(refused, null, "queued for the busy listener, not refused");
    relay.finish(finish(item.workId, true));
    await a;
    const [next] = await relay.take(5_000, never, 1);
    assert.equal(next.path, "/w/b");
    relay.finish(finish(next.workId, true));
    await b;
    assert.equal(refused, null);
  });
});
