// The listener's settings: the recall uid it trusts on the fd channel is never root nor
// 65534 (users' programs run as nobody); without one it takes the 'fanrecall' system user's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { loadListenerConfig } from "../../listener/config.js";

test("the recall uid is never 0 or 65534; an explicit one is kept", () => {
  for (const uid of ["0", "65534", "-1", "x"]) {
    assert.throws(() => loadListenerConfig(["--watch", "/x", "--recall-uid", uid], {}), /recall uid/, uid);
  }
  assert.equal(loadListenerConfig(["--watch", "/x", "--recall-uid", "1234"], {}).recallUid, 1234);
  assert.equal(loadListenerConfig(["--watch", "/x"], { FANRECALL_RECALL_UID: "4321" }).recallUid, 4321);
});

test("without a recall uid: the 'fanrecall' system user's, or a clear error", () => {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith("fanrecall:"));
  if (line) assert.equal(loadListenerConfig(["--watch", "/x"], {}).recallUid, Number(line.split(":")[2]));
  else assert.throws(() => loadListenerConfig(["--watch", "/x"], {}), /system user 'fanrecall'/);
  assert.throws(() => loadListenerConfig(["--watch", "/x", "--mode", "sideways", "--recall-uid", "5"], {}), /mode/);
});
