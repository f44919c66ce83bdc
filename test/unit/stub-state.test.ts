// Stub state: round trip, and every malformed or forged value is refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  decodeStubState,
  encodeStubState,
  needsRecall,
  StubStateError,
  withRecallTime,
} from "../../listener/stub-state.js";
import type { StubState } from "../../listener/stub-state.js";

const base: StubState = {
  version: 1,
  state: "released",
  bucket: "b",
  key: "fanrecall/0b7c",
  versionId: "",
  manifestVersionId: "",
  size: 2 ** 40 + 3,
  mtimeNs: 1_700_000_000_123_456_789n,
  atimeNs: 1_700_000_001_000_000_000n,
  chunkSize: 4 * 1024 * 1024,
  contentSha256: "a".repeat(64),
  manifestSha256: "b".repeat(64),
};

test("a stub state survives encode and decode, including 64-bit sizes and ns times", () => {
  assert.deepEqual(decodeStubState(encodeStubState(base)), base);
});

test("the last recall time is optional: absent in old states, kept when set, refused when malformed", () => {
  const old = JSON.parse(encodeStubState(base).toString()) as Record<string, unknown>;
  assert.equal(old.rt, undefined);
  assert.equal(decodeStubState(encodeStubState(base)).recalledAtMs, undefined);
  const recalled = withRecallTime(base, 1_750_000_000_000);
  assert.deepEqual(decodeStubState(encodeStubState(recalled)), recalled);
  const bad = { ...old, rt: -5 };
  assert.throws(() => decodeStubState(Buffer.from(JSON.stringify(bad))), StubStateError);
});

test("malformed stub states are refused, never guessed", () => {
  const bad = [
    "not json",
    "[]",
    JSON.stringify({ v: 2 }),
    JSON.stringify({ ...JSON.parse(encodeStubState(base).toString()), st: "resident" }),
    JSON.stringify({ ...JSON.parse(encodeStubState(base).toString()), sha: "zz" }),
    JSON.stringify({ ...JSON.parse(encodeStubState(base).toString()), cs: 1000 }),
    JSON.stringify({ ...JSON.parse(encodeStubState(base).toString()), sz: -1 }),
    JSON.stringify({ ...JSON.parse(encodeStubState(base).toString()), mt: "1e9" }),
    JSON.stringify({ ...JSON.parse(encodeStubState(base).toString()), k: "" }),
    "x".repeat(5000),
  ];
  for (const raw of bad) assert.throws(() => decodeStubState(Buffer.from(raw)), StubStateError, raw.slice(0, 40));
});

test("only released and partial files need a recall", () => {
  assert.deepEqual(
    (["archived", "released", "partial", "dirty"] as const).map((s) => needsRecall(s)),
    [false, true, true, false],
  );
});

test("encode refuses what decode would refuse: a bogus archive result never reaches the xattr", () => {
  const bogus: Array<Partial<StubState>> = [
    { chunkSize: 0 },
    { chunkSize: 4097 },
    { chunkSize: 2 * 1024 * 1024 * 1024 },
    { contentSha256: "not-hex" },
    { manifestSha256: "A".repeat(64) },
    { key: "" },
    { key: "a\nb" },
    { bucket: "x".repeat(1025) },
  ];
  for (const change of bogus) {
    assert.throws(() => encodeStubState({ ...base, ...change }), StubStateError, JSON.stringify(change));
  }
  assert.doesNotThrow(() => encodeStubState({ ...base, chunkSize: 1024 * 1024 * 1024 }));
});
