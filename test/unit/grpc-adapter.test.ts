// Round trips through the grpc-js adapter over a unix socket: unary calls, server-side
// deadline signals, a client deadline that expires, errors mapped to status codes, health.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";
import {
  Health,
  HealthStatus,
  Reason,
  RecallMode,
  RecallService,
  RpcError,
  ServingStatus,
  Verdict,
  createClient,
  startServer,
  toHandlers,
  toServiceDefinition,
} from "../../proto/index.js";
import type { CallContext, RunningServer, ServiceImpl } from "../../proto/index.js";

type RecallMethods = typeof RecallService extends { method: infer M } ? { [K in keyof M]: M[K] } : never;

/** An upper bound for a 200 ms deadline that a loaded 2-core machine still meets. */
const GENEROUS_MS = 20_000;

describe("grpc adapter over a unix socket", () => {
  const dir = mkdtempSync(join(tmpdir(), "fanrecall-grpc-"));
  const address = `unix://${join(dir, "recall.sock")}`;
  const health = new HealthStatus();
  let server: RunningServer;
  let sawAbort: Promise<number>;
  let resolveAbort: (ms: number) => void = () => {};

  const impl: ServiceImpl<RecallMethods> = {
    recall: async (req, ctx: CallContext) => {
      if (req.ranges.length === 0) throw new RpcError(status.INVALID_ARGUMENT, "no ranges");
      if (req.object?.key === "slow") {
        const started = Date.now();
        await new Promise<void>((resolve) => ctx.signal.addEventListener("abort", () => resolve()));
        resolveAbort(Date.now() - started);
        return { requestId: req.requestId, verdict: Verdict.DENY, reason: Reason.TIMEOUT };
      }
      const bytes = req.ranges.reduce((sum, r) => sum + r.length, 0n);
      return { requestId: req.requestId, verdict: Verdict.ALLOW, reason: Reason.RECALLED, bytesFetched: bytes };
    },
    archive: async (req) => ({ requestId: req.requestId, reason: Reason.ARCHIVED }),
    verify: async (req) => ({ requestId: req.requestId, equal: true, reason: Reason.VERIFIED }),
    statObject: async () => ({ exists: false, reason: Reason.OBJECT_MISSING }),
    reportListenerStats: async () => ({}),
    reportPolicyStats: async () => ({}),
    takeAdminWork: async () => ({ items: [] }),
    finishAdminWork: async () => ({}),
    writeRecord: async () => ({ reason: Reason.STORED }),
    listNamespace: async () => ({ objects: [], reason: Reason.STORED }),
    getNamespaceObject: async () => ({ reason: Reason.OBJECT_MISSING }),
    putNamespaceObject: async () => ({ reason: Reason.STORED }),
    deleteNamespaceObjects: async () => ({ reason: Reason.DELETED }),
  };

  before(async () => {
    sawAbort = new Promise((resolve) => (resolveAbort = resolve));
    health.set("", ServingStatus.SERVING);
    server = await startServer(address, [
      { definition: toServiceDefinition(RecallService), handlers: toHandlers(RecallService, impl) },
      { definition: toServiceDefinition(Health), handlers: toHandlers(Health, health.impl()) },
    ]);
  });

  after(async () => {
    await server.stop(500);
    rmSync(dir, { recursive: true, force: true });
  });

  test("a unary call carries 64-bit ids, enums and repeated messages both ways", async () => {
    const { client, close } = createClient(RecallService, address);
    try {
      const reply = await client.recall({
        requestId: 2n ** 63n + 5n,
        mode: RecallMode.RANGE,
        object: { bucket: "b", key: "k" },
        ranges: [
          { offset: 0n, length: 4096n },
          { offset: 2n ** 40n, length: 8192n },
        ],
      });
      assert.equal(reply.requestId, 2n ** 63n + 5n);
      assert.equal(reply.verdict, Verdict.ALLOW);
      assert.equal(reply.reason, Reason.RECALLED);
      assert.equal(reply.bytesFetched, 12288n);
    } finally {
      close();
    }
  });

  test("a handler error reaches the client as its status code", async () => {
    const { client, close } = createClient(RecallService, address);
    try {
      await assert.rejects(client.recall({ requestId: 1n }), (err: unknown) => {
        assert.ok(err instanceof RpcError);
        assert.equal(err.code, status.INVALID_ARGUMENT);
        assert.match(err.message, /no ranges/);
        return true;
      });
    } finally {
      close();
    }
  });

  test("a deadline that expires fails the call and aborts the server's signal", async () => {
    const { client, close } = createClient(RecallService, address);
    try {
      const started = Date.now();
      await assert.rejects(
        client.recall(
          { requestId: 7n, object: { key: "slow" }, ranges: [{ offset: 0n, length: 1n }] },
          { timeoutMs: 200 },
        ),
        (err: unknown) => err instanceof RpcError && err.code === status.DEADLINE_EXCEEDED,
      );
      // The outcome, and bounds no loaded machine can break: not before the deadline (load
      // only delays), and well inside the test's time. The server's wait is not bounded
      // below: under load the request reaches it late, its deadline counts from the client.
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 190, `the call failed before its deadline, after ${elapsed} ms`);
      assert.ok(elapsed < GENEROUS_MS, `deadline took ${elapsed} ms`);
      const serverWaited = await sawAbort;
      assert.ok(serverWaited < GENEROUS_MS, `server signal aborted after ${serverWaited} ms`);
    } finally {
      close();
    }
  });

  test("a call to a socket nobody serves fails with UNAVAILABLE within its deadline", async () => {
    const { client, close } = createClient(RecallService, `unix://${join(dir, "nobody.sock")}`);
    try {
      await assert.rejects(
        client.statObject({}, { timeoutMs: 300 }),
        (err: unknown) =>
          err instanceof RpcError && (err.code === status.UNAVAILABLE || err.code === status.DEADLINE_EXCEEDED),
      );
    } finally {
      close();
    }
  });

  test("the standard health service answers Check as its status changes", async () => {
    const { client, close } = createClient(Health, address);
    try {
      assert.equal((await client.check({ service: "" })).status, ServingStatus.SERVING);
      health.set("", ServingStatus.NOT_SERVING);
      assert.equal((await client.check({ service: "" })).status, ServingStatus.NOT_SERVING);
      await assert.rejects(
        client.check({ service: "nope" }),
        (err: unknown) => err instanceof RpcError && err.code === status.NOT_FOUND,
      );
    } finally {
      health.set("", ServingStatus.SERVING);
      close();
    }
  });
});
