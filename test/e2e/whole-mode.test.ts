// End to end, whole-file mode: on tmpfs (which refuses FAN_PRE_ACCESS) the listener falls
// back to FAN_OPEN_PERM and recalls the whole file before the open goes on. Same content
// checks as range mode, against Swift with s3api.
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync, statSync, writeFileSync, chmodSync } from "node:fs";
import { join } from "node:path";
import { isRoot, rootTest } from "../helpers/root.js";
import { runAsNobody } from "../helpers/child.js";
import { makeTmpfs } from "../helpers/loop-fs.js";
import { Teardown } from "../helpers/teardown.js";
import { startSwift } from "../helpers/object-server.js";
import type { ObjectServer } from "../helpers/object-server.js";
import { startFanrecall } from "../helpers/fanrecall-instance.js";
import type { FanrecallInstance } from "../helpers/fanrecall-instance.js";

const MiB = 1024 * 1024;
const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("whole-file mode on tmpfs", () => {
  const teardown = new Teardown();
  let dir = "";
  let swift: ObjectServer;
  let fr: FanrecallInstance;

  before(
    async () => {
      if (!isRoot()) return;
      const tmpfs = await makeTmpfs(256);
      teardown.add(() => tmpfs.cleanup());
      dir = tmpfs.dir;
      swift = await startSwift();
      teardown.add(() => swift.stop());
      fr = await startFanrecall({ watch: [dir], server: swift, bucket: "fanrecall-whole" });
      teardown.add(() => fr.stop());
      // The listener's log lines reach the captured output on their own schedule, possibly
      // after start's "ready" line: wait for the mode line (bounded), then check it.
      const deadline = Date.now() + 10_000;
      while (!/"msg":"watching"/.test(fr.output()) && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      assert.match(fr.output(), /"mode":"whole"/);
    },
    { timeout: 120_000 },
  );

  after(() => teardown.run(), { timeout: 60_000 });

  rootTest(
    "released files of 0 B, 1 B, 4 KiB and 20 MiB read back exactly through cat, dd and python mmap",
    async () => {
      const contents = new Map<string, Buffer>();
      for (const [name, size] of [
        ["empty", 0],
        ["one", 1],
        ["page", 4096],
        ["big", 20 * MiB + 3],
      ] as const) {
        const p = join(dir, `${name}.bin`);
        const b = randomBytes(size);
        writeFileSync(p, b);
        chmodSync(p, 0o644);
        contents.set(p, b);
      }
      const r = await fr.cli(["release", dir]);
      assert.equal(r.code, 0, r.stderr + fr.output().slice(-3000));
      for (const [p, b] of contents) {
        assert.equal(statSync(p).size, b.length);
        if (b.length > 0) assert.ok(statSync(p).blocks * 512 <= 8192, `${p} released`);
      }
      const status = await fr.status([dir]);
      for (const s of status) assert.equal(s.state, "released");
      for (const [p, b] of contents) {
        const cat = await runAsNobody(["cat", p]);
        assert.equal(cat.code, 0, cat.stderr);
        assert.equal(sha256(cat.stdout), sha256(b), `${p} via cat`);
      }
      const big = join(dir, "big.bin");
      assert.equal((await fr.cli(["release", big])).code, 0);
      const dd = await runAsNobody(["dd", `if=${big}`, "bs=4096", "skip=100", "count=2", "status=none"]);
      assert.ok(dd.stdout.equals(contents.get(big)!.subarray(100 * 4096, 102 * 4096)));
      assert.equal((await fr.cli(["release", big])).code, 0);
      const py =
        "import mmap,hashlib,sys\nf=open(sys.argv[1],'rb')\nm=mmap.mmap(f.fileno(),0,access=mmap.ACCESS_READ)\nprint(hashlib.sha256(m[:]).hexdigest())";
      const mm = await runAsNobody(["/usr/bin/python3", "-c", py, big]);
      assert.equal(mm.stdout.toString().trim(), sha256(contents.get(big)!));
      assert.equal(sha256(readFileSync(big)), sha256(contents.get(big)!));
    },
    { timeout: 180_000 },
  );
});
