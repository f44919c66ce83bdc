// The fd channel header: exact round trip, and strict refusal of anything else.
import { test } from "node:test";
import assert from "node:assert/strict";
import { FdMessageType, decodeFdHeader, encodeFdHeader } from "../../proto/index.js";

test("a header round-trips with a 64-bit request id", () => {
  const h = { type: FdMessageType.FD_OFFER, requestId: 2n ** 64n - 1n };
  assert.deepEqual(decodeFdHeader(encodeFdHeader(h)), h);
});

test("garbage, wrong sizes, versions, types and reserved bits are refused", () => {
  const good = encodeFdHeader({ type: FdMessageType.FD_OFFER, requestId: 9n });
  const cases: Buffer[] = [Buffer.alloc(0), Buffer.alloc(15), Buffer.alloc(17), Buffer.alloc(16)];
  for (const [offset, value] of [
    [0, 0x00],
    [2, 2],
    [3, 7],
    [5, 1],
  ] as const) {
    const b = Buffer.from(good);
    b.writeUInt8(value, offset);
    cases.push(b);
  }
  const zeroId = Buffer.from(good);
  zeroId.writeBigUInt64LE(0n, 8);
  cases.push(zeroId);
  for (const c of cases) assert.equal(typeof decodeFdHeader(c), "string", c.toString("hex"));
});
