// fanotifyRespondRange: how a holder or a taking-over listener answers the events a dead
// predecessor had read but not answered, known only by their fd numbers. A real group on a
// loop ext4, a real reader (uid 1234) held by an event this test reads and "forgets": the
// sweep answers exactly that one (the reader gets EIO), and a second sweep finds nothing.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  AT_FDCWD,
  FAN,
  close,
  denyErrno,
  fanotifyInit,
  fanotifyMark,
  fanotifyReadEvents,
  fanotifyRespondRange,
} from "../../native/index.js";
import { runAsUid } from "../helpers/child.js";
import { makeExt4 } from "../helpers/loop-fs.js";
import { rootTest } from "../helpers/root.js";
import { waitReadable } from "../helpers/wait-readable.js";

const EIO = 5;

rootTest(
  "a sweep of fd numbers answers the held event it finds, and only once",
  async () => {
    const fs = await makeExt4(64);
    const group = fanotifyInit(FAN.FAN_CLASS_PRE_CONTENT | FAN.FAN_CLOEXEC | FAN.FAN_NONBLOCK, FAN.O_RDONLY);
    const file = join(fs.dir, "held.txt");
    writeFileSync(file, "held\n", { mode: 0o644 });
    let eventFd = -1;
    try {
      fanotifyMark(group, FAN.FAN_MARK_ADD | FAN.FAN_MARK_FILESYSTEM, FAN.FAN_PRE_ACCESS, AT_FDCWD, fs.dir);
      const reader = runAsUid(1234, ["cat", file], { timeoutMs: 20_000 });
      await waitReadable(group, 10_000);
      const events = fanotifyReadEvents(group);
      assert.equal(events.length, 1);
      eventFd = events[0].fd;
      assert.ok(eventFd >= 0);
      assert.equal(fanotifyRespondRange(group, 0, 65_536, denyErrno(EIO)), 1, "the held event is found");
      assert.equal(fanotifyRespondRange(group, 0, 65_536, denyErrno(EIO)), 0, "nothing is left to answer");
      const r = await reader;
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /Input\/output error/);
    } finally {
      if (eventFd >= 0) close(eventFd);
      close(group);
      await fs.cleanup();
    }
  },
  { timeout: 60_000 },
);
