// FdPoller: uv_poll readability on the main loop (no root needed; connected seqpacket pairs as the fd).
import assert from "node:assert/strict";
import { openSync, closeSync } from "node:fs";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { FdPoller, close, isNativeError, recvWithFd, sendWithFd } from "../../native/index.js";
import { NATIVE_FACADE_URL, nodeEvalArgv, runChild } from "../helpers/child.js";
import { SOCKETS_HELPER_URL, seqpacketPair } from "../helpers/sockets.js";

async function withPair(fn: (a: number, b: number) => Promise<void>): Promise<void> {
  const [a, b] = seqpacketPair();
  try {
    await fn(a, b);
  } finally {
    close(a);
    close(b);
  }
}

function nextCall(): { wait: Promise<void>; fire: () => void } {
  let fire = (): void => undefined;
  const wait = new Promise<void>((resolve) => {
    fire = resolve;
  });
  return { wait, fire };
}

test("fires only while the fd is readable (no busy polling), and stop() silences it", async () => {
  await withPair(async (a, b) => {
    let calls = 0;
    let signal = nextCall();
    const poller = new FdPoller(b, () => {
      calls++;
      while (recvWithFd(b, 64) !== null);
      signal.fire();
    });
    try {
      poller.start();
      await sleep(100);
      assert.equal(calls, 0, "idle fd must not wake the callback");
      sendWithFd(a, Buffer.from("one"), -1);
      await signal.wait;
      await sleep(50);
      assert.equal(calls, 1, "drained fd wakes exactly once");
      poller.stop();
      sendWithFd(a, Buffer.from("two"), -1);
      await sleep(50);
      assert.equal(calls, 1, "stopped poller stays quiet");
      signal = nextCall();
      poller.start();
      await signal.wait;
      assert.equal(calls, 2, "restart sees data that arrived while stopped");
    } finally {
      poller.close();
    }
  });
});

test("level-triggered: an undrained fd keeps firing until read", async () => {
  await withPair(async (a, b) => {
    let calls = 0;
    const done = nextCall();
    const poller = new FdPoller(b, () => {
      calls++;
      if (calls === 3) {
        recvWithFd(b, 64);
        done.fire();
      }
    });
    try {
      poller.start();
      sendWithFd(a, Buffer.from("x"), -1);
      await done.wait;
      await sleep(30);
      assert.equal(calls, 3);
    } finally {
      poller.close();
    }
  });
});

test("callbacks run through MakeCallback: microtasks drain before the next macrotask", async () => {
  await withPair(async (a, b) => {
    const order: string[] = [];
    const done = nextCall();
    const poller = new FdPoller(b, () => {
      recvWithFd(b, 64);
      setImmediate(() => {
        order.push("immediate");
        done.fire();
      });
      process.nextTick(() => order.push("tick"));
      queueMicrotask(() => order.push("microtask"));
      order.push("callback");
    });
    try {
      poller.start();
      sendWithFd(a, Buffer.from("x"), -1);
      await done.wait;
      assert.deepEqual(order, ["callback", "tick", "microtask", "immediate"]);
    } finally {
      poller.close();
    }
  });
});

test("close() is final; bad fds are refused at construction", async () => {
  await withPair(async (_a, b) => {
    const poller = new FdPoller(b, () => undefined);
    poller.close();
    poller.close();
    poller.stop();
    assert.throws(
      () => poller.start(),
      (e: unknown) => isNativeError(e, "EBADF"),
    );
  });
  const file = openSync("/etc/hostname", "r");
  try {
    // epoll refuses regular files.
    assert.throws(
      () => new FdPoller(file, () => undefined),
      (e: unknown) => isNativeError(e, "EPERM") && e.syscall === "uv_poll_init",
    );
  } finally {
    closeSync(file);
  }
});

test("a throwing callback becomes uncaughtException; a started poller keeps the loop alive until unref()", async () => {
  const script = `
    import { FdPoller, sendWithFd } from ${JSON.stringify(NATIVE_FACADE_URL)};
    import { seqpacketPair } from ${JSON.stringify(SOCKETS_HELPER_URL)};
    const [a, b] = seqpacketPair();
    process.on('uncaughtException', (err) => {
      console.log('caught:' + err.message);
      poller.close();
      const idle = new FdPoller(a, () => {});
      idle.start();
      // A started poller keeps the loop alive (this unref'd timer still fires); unref() releases it.
      setTimeout(() => { console.log('alive'); idle.unref(); }, 100).unref();
    });
    const poller = new FdPoller(b, () => { throw new Error('boom'); });
    poller.start();
    sendWithFd(a, Buffer.from('x'), -1);
  `;
  const result = await runChild(nodeEvalArgv(script), { timeoutMs: 10_000 });
  assert.equal(result.stderr, "");
  assert.equal(result.stdout.toString(), "caught:boom\nalive\n");
  assert.equal(result.code, 0, "exits although a poller is started (unref)");
});
