// The listener's settings: the recall uid it trusts on the fd channel is never root nor
// 65534 (users' programs run as nobody); without one it takes the 'fanrecall' system user's.
// Every flag, FANRECALL_* variable and --config key the deploy files and tests use keeps its
// meaning and default.
import { test } from "node:test";
import { hostname } from "node:os";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LISTENER_HELP, loadListenerConfig } from "../../listener/config.js";

test("the recall uid is never 0 or 65534, and always an integer; an explicit one is kept", () => {
  for (const uid of ["0", "65534", "-1", "x", "", "12.5", "1e3", "4294967295"]) {
    assert.throws(() => loadListenerConfig(["--watch", "/x", "--recall-uid", uid], {}), /^Error: --recall-uid: /, uid);
    assert.throws(
      () => loadListenerConfig(["--watch", "/x"], { FANRECALL_RECALL_UID: uid }),
      new RegExp(`^Error: --recall-uid: .* \\(from FANRECALL_RECALL_UID\\)$`),
      uid,
    );
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
  assert.throws(() => loadListenerConfig(["--watch", "/x", "--mode", "sideways", "--recall-uid", "5"], {}), {
    message: "--mode: must be auto, range or whole, not 'sideways'",
  });
});

test("defaults, and the holder and admin sockets beneath the run directory", () => {
  const c = loadListenerConfig(["--watch", "/x", "--recall-uid", "5"], {});
  assert.deepEqual(c, {
    watch: ["/x"],
    namespaces: [
      `${hostname()
        .toLowerCase()
        .replace(/[^a-z0-9._-]/g, "_")}-x`,
    ],
    runDir: "/run/fanrecall",
    recallUid: 5,
    mode: "auto",
    recallTimeoutMs: 30000,
    maxRecalls: 256,
    callerShare: 0.5,
    recallRules: [],
    logLevel: "info",
    adminSocket: "/run/fanrecall/listener/admin.sock",
    holderSocket: "/run/fanrecall/holder/holder.sock",
    meshAdmin: false,
    checkRecalledBytes: true,
  });
  const r = loadListenerConfig(["--watch", "/x", "--recall-uid", "5", "--run-dir", "/r", "--holder-socket", ""], {});
  assert.equal(r.adminSocket, "/r/listener/admin.sock");
  assert.equal(r.holderSocket, "", "'' runs without a holder");
  assert.throws(() => loadListenerConfig(["--recall-uid", "5"], {}), /^Error: --watch DIR, or FANRECALL_WATCH, or/);
});

test("every FANRECALL_* variable of the deploy files, and the same keys from a --config file", () => {
  const env = {
    FANRECALL_WATCH: "/a:/b",
    FANRECALL_NAMESPACE: "media:docs",
    FANRECALL_RUN_DIR: "/r",
    FANRECALL_HOLDER_SOCKET: "/h.sock",
    FANRECALL_ADMIN_SOCKET: "/a.sock",
    FANRECALL_RECALL_UID: "10001",
    FANRECALL_MODE: "whole",
    FANRECALL_RECALL_TIMEOUT_MS: "5000",
    FANRECALL_MAX_RECALLS: "8",
    FANRECALL_CALLER_SHARE: "0.25",
    FANRECALL_LOG_LEVEL: "debug",
    FANRECALL_MESH_ADMIN: "true",
    FANRECALL_CHECK_RECALLED_BYTES: "false",
  };
  const want = {
    watch: ["/a", "/b"],
    namespaces: ["media", "docs"],
    runDir: "/r",
    holderSocket: "/h.sock",
    adminSocket: "/a.sock",
    recallUid: 10001,
    mode: "whole",
    recallTimeoutMs: 5000,
    maxRecalls: 8,
    callerShare: 0.25,
    logLevel: "debug",
    meshAdmin: true,
    checkRecalledBytes: false,
  };
  // No rules file given: no rules (the rules file has a test of its own below).
  const loaded = { ...want, recallRules: [] };
  assert.deepEqual(loadListenerConfig([], env), loaded);
  const dir = mkdtempSync(join(tmpdir(), "fanrecall-listener-config-"));
  try {
    const path = join(dir, "listener.json");
    writeFileSync(path, JSON.stringify(want));
    assert.deepEqual(loadListenerConfig(["--config", path], {}), loaded);
    assert.deepEqual(loadListenerConfig([], { FANRECALL_CONFIG: path }), loaded);
    // Flags still win over the file.
    assert.equal(loadListenerConfig(["--config", path, "--mode", "range"], {}).mode, "range");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("bad values are refused in the table's words", () => {
  const base = ["--watch", "/x", "--recall-uid", "5"];
  const cases: Array<[string, string, string]> = [
    ["--recall-timeout-ms", "99", "an integer from 100 to 2147483647"],
    ["--recall-timeout-ms", "NaN", "an integer from 100 to 2147483647"],
    ["--max-recalls", "0", "an integer from 1 to 65536"],
    ["--max-recalls", "65537", "an integer from 1 to 65536"],
    ["--caller-share", "0", "a number above 0 and at most 1"],
    ["--caller-share", "1.5", "a number above 0 and at most 1"],
    ["--mesh-admin", "yes", "true or false"],
    ["--check-recalled-bytes", "1", "true or false"],
    ["--log-level", "loud", "fatal, error, warn, info, debug, trace or silent"],
    ["--run-dir", "", "a path"],
  ];
  for (const [flag, value, rule] of cases) {
    assert.throws(() => loadListenerConfig([...base, flag, value], {}), {
      message: `${flag}: must be ${rule}, not '${value}'`,
    });
    assert.ok(LISTENER_HELP.includes(`--${flag.slice(2)} `), flag);
  }
  assert.throws(() => loadListenerConfig([...base, "--frobnicate", "1"], {}), {
    message: "unknown option '--frobnicate'",
  });
  assert.throws(() => loadListenerConfig([...base, "extra"], {}), { message: "unexpected argument 'extra'" });
});

test("namespaces: one per watch, valid and distinct, else derived from the host name and the watch path", () => {
  const load = (...argv: string[]) => loadListenerConfig(["--recall-uid", "5", ...argv], {});
  assert.deepEqual(load("--watch", "/a", "--watch", "/b", "--namespace", "n1", "--namespace", "n2").namespaces, [
    "n1",
    "n2",
  ]);
  assert.throws(() => load("--watch", "/a", "--watch", "/b", "--namespace", "n1"), /one per --watch/);
  assert.throws(() => load("--watch", "/a", "--watch", "/b", "--namespace", "n", "--namespace", "n"), /same namespace/);
  assert.throws(() => load("--watch", "/a", "--namespace", "../x"), /not a namespace name/);
  const derived = load("--watch", "/srv/video", "--watch", "/srv/docs").namespaces;
  assert.equal(new Set(derived).size, 2);
  assert.ok(derived[0].endsWith("-srv-video"));
});

test("--recall-rules / FANRECALL_RECALL_RULES: read and checked at start; a bad file is one line naming it", (t) => {
  const dir = mkdtempSync(join(tmpdir(), "rules-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, "good.json");
  writeFileSync(good, '[{"name":"scanners","match":{"command":"updatedb*"},"action":"deny"}]');
  const base = ["--watch", "/x", "--recall-uid", "5"];
  assert.deepEqual(loadListenerConfig([...base, "--recall-rules", good], {}).recallRules, [
    { name: "scanners", match: { command: "updatedb*" }, action: "deny", errno: 1 },
  ]);
  assert.equal(loadListenerConfig(base, { FANRECALL_RECALL_RULES: good }).recallRules.length, 1);
  const bad = join(dir, "bad.json");
  writeFileSync(bad, '[{"name":"x","match":{},"action":"deny","errno":"ENOENT"}]');
  assert.throws(() => loadListenerConfig([...base, "--recall-rules", bad], {}), {
    message: `--recall-rules ${bad}: rule 1 ("x"): "errno" must be one fanotify can answer with: EPERM, EIO, EAGAIN, EBUSY, ETXTBSY, ENOSPC, EDQUOT`,
  });
  assert.throws(() => loadListenerConfig([...base, "--recall-rules", dir], {}), /: not a regular file$/);
  assert.throws(() => loadListenerConfig([...base, "--recall-rules", join(dir, "none")], {}), /ENOENT/);
});
