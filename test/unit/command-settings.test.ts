// The settings tables of the CLI commands (holder, archive/release/restore, status, mesh,
// start): their defaults, the environment variables they have always read, and a bad value
// refused in the settings module's words.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadSettings } from "../../settings/settings.js";
import { HOLDER_SPEC } from "../../holder/main.js";
import { ADMIN_SPEC, STATUS_SPEC } from "../../cli/admin-commands.js";
import { parseMeshArgs } from "../../cli/mesh-command.js";
import { parseStartArgs } from "../../cli/start-settings.js";

test("holder: --socket, FANRECALL_HOLDER_SOCKET, default", () => {
  assert.equal(loadSettings(HOLDER_SPEC, [], {}).socket, "/run/fanrecall/holder/holder.sock");
  assert.equal(loadSettings(HOLDER_SPEC, [], { FANRECALL_HOLDER_SOCKET: "/h/s" }).socket, "/h/s");
  assert.equal(loadSettings(HOLDER_SPEC, ["--socket", "/f/s"], { FANRECALL_HOLDER_SOCKET: "/h/s" }).socket, "/f/s");
  assert.throws(() => loadSettings(HOLDER_SPEC, ["--socket"], {}), { message: "--socket: needs a value" });
  assert.throws(() => loadSettings(HOLDER_SPEC, ["--socket", ""], {}), { message: "--socket: must be a path, not ''" });
  assert.throws(() => loadSettings(HOLDER_SPEC, ["/x"], {}), { message: "unexpected argument '/x'" });
});

test("admin commands: PATH... after options or '--'; --run-dir and FANRECALL_RUN_DIR; --json for status only", () => {
  const a = loadSettings(ADMIN_SPEC, ["/w/a", "--run-dir=/r", "/w/b"], {});
  assert.deepEqual(a.positionals, ["/w/a", "/w/b"]);
  assert.equal(a.runDir, "/r");
  // No --run-dir: undefined, and the instance watching the paths is found (instance-registry).
  assert.equal(loadSettings(ADMIN_SPEC, ["/w"], {}).runDir, undefined);
  assert.equal(loadSettings(ADMIN_SPEC, ["/w"], { FANRECALL_RUN_DIR: "/e" }).runDir, "/e");
  assert.deepEqual(loadSettings(ADMIN_SPEC, ["--", "-odd"], {}).positionals, ["-odd"]);
  assert.throws(() => loadSettings(ADMIN_SPEC, ["--json", "/w"], {}), { message: "unknown option '--json'" });
  assert.throws(() => loadSettings(ADMIN_SPEC, ["-odd"], {}), { message: "unknown option '-o'" });
  assert.throws(() => loadSettings(ADMIN_SPEC, [], {}), { message: "at least one PATH is required" });
  assert.throws(() => loadSettings(ADMIN_SPEC, ["--run-dir", "", "/w"], {}), {
    message: "--run-dir: must be a path, not ''",
  });
  const s = loadSettings(STATUS_SPEC, ["--json", "/w"], {});
  assert.equal(s.json, true);
  assert.equal(loadSettings(STATUS_SPEC, ["/w"], {}).json, false);
});

test("mesh: the op first, required address and CA, FANRECALL_MESH_*, per-op timeout default", () => {
  const env = { FANRECALL_MESH_ADDRESS: "h:9443", FANRECALL_MESH_CA: "/ca.pem" };
  const m = parseMeshArgs(["status", "/w/f"], env);
  assert.deepEqual(m, {
    op: "status",
    address: "h:9443",
    ca: "/ca.pem",
    cert: "",
    key: "",
    serverName: "",
    timeoutMs: 30_000,
    json: false,
    paths: ["/w/f"],
  });
  assert.equal(parseMeshArgs(["restore", "/w/f"], env).timeoutMs, 600_000);
  const full = parseMeshArgs(
    [
      "archive",
      "--address",
      "x:1",
      "--ca",
      "/c",
      "--cert",
      "/crt",
      "--key",
      "/k",
      "--server-name",
      "n",
      "--timeout-ms",
      "5",
      "--json",
      "/p",
    ],
    env,
  );
  assert.deepEqual(
    [full.address, full.ca, full.cert, full.key, full.serverName, full.timeoutMs, full.json],
    ["x:1", "/c", "/crt", "/k", "n", 5, true],
  );
  assert.throws(() => parseMeshArgs(["list", "/p"], env), /first argument must be status, restore or archive/);
  assert.throws(
    () => parseMeshArgs(["status", "/p"], {}),
    /^Error: --address HOST:PORT, or FANRECALL_MESH_ADDRESS is required$/,
  );
  assert.throws(() => parseMeshArgs(["status", "--address", "nope", "/p"], env), {
    message: "--address: must be HOST:PORT, not 'nope'",
  });
  assert.throws(() => parseMeshArgs(["status", "--cert", "/c", "/p"], env), /--cert and --key go together/);
  for (const bad of ["0", "x", "1.5"]) {
    assert.throws(() => parseMeshArgs(["status", "--timeout-ms", bad, "/p"], env), {
      message: `--timeout-ms: must be an integer from 1 to 2147483647, not '${bad}'`,
    });
  }
});

test("start: defaults, --state-dir moves the sockets, environment as before, bad values refused before anything starts", () => {
  assert.deepEqual(parseStartArgs(["--watch", "/w"], {}), {
    watch: ["/w"],
    namespaces: [],
    reconcileEveryMs: 3_600_000,
    retainMs: 30 * 86_400_000,
    stateDir: "/var/lib/fanrecall",
    runDir: "/run/fanrecall",
    user: null,
    mode: "auto",
    timeoutMs: "30000",
    chunkSize: "4194304",
    policyFile: null,
    recallRules: null,
  });
  assert.equal(parseStartArgs(["--watch", "/w", "--policy-file", "/etc/p.json"], {}).policyFile, "/etc/p.json");
  assert.equal(parseStartArgs(["--watch", "/w", "--state-dir", "/s"], {}).runDir, "/s/run");
  assert.equal(parseStartArgs(["--watch", "/w", "--state-dir", "/s"], { FANRECALL_RUN_DIR: "/e" }).runDir, "/e");
  const env = {
    FANRECALL_RECALL_USER: "1234:5678",
    FANRECALL_MODE: "whole",
    FANRECALL_RECALL_TIMEOUT_MS: "500",
    FANRECALL_CHUNK_SIZE: "8192",
  };
  const e = parseStartArgs(["--watch", "/w"], env);
  assert.deepEqual([e.user, e.mode, e.timeoutMs, e.chunkSize], [{ uid: 1234, gid: 5678 }, "whole", "500", "8192"]);
  assert.throws(() => parseStartArgs([], {}), /^Error: --watch DIR is required$/);
  assert.throws(
    () => parseStartArgs(["--watch", "/w", "--recall-user", "65534"], {}),
    /--recall-user: uid 65534 is nobody/,
  );
  assert.throws(() => parseStartArgs(["--watch", "/w", "--chunk-size", "5000"], {}), {
    message: "--chunk-size: must be a multiple of 4096, not '5000'",
  });
  assert.throws(() => parseStartArgs(["--watch", "/w", "--mode", "x"], {}), {
    message: "--mode: must be auto, range or whole, not 'x'",
  });
  assert.throws(() => parseStartArgs(["--watch", "/w", "stray"], {}), { message: "unexpected argument 'stray'" });
  assert.throws(() => parseStartArgs(["--watch", "/w", "--recall-rules", "/nonexistent/rules.json"], {}), {
    message: /^--recall-rules \/nonexistent\/rules\.json: ENOENT/,
  });
});
