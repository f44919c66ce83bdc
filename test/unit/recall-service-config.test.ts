// The recall service's settings: every flag, FANRECALL_* variable and --config key of the
// deploy files keeps its meaning and default; uids are integers, never NaN; the S3 secret
// comes from its file; bad values are refused in the settings table's words.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RECALL_SERVICE_HELP, loadRecallServiceConfig } from "../../recall-service/config.js";

const S3 = {
  FANRECALL_S3_ENDPOINT: "http://127.0.0.1:9000",
  FANRECALL_S3_ACCESS_KEY: "ak",
  FANRECALL_S3_SECRET_KEY: "sk",
};
const NOT_ROOT = 1000;

function withDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "fanrecall-recall-config-"));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("defaults", () => {
  const c = loadRecallServiceConfig([], S3, NOT_ROOT);
  assert.equal(c.runDir, "/run/fanrecall");
  assert.deepEqual(c.s3, {
    endpoint: S3.FANRECALL_S3_ENDPOINT,
    accessKey: "ak",
    secretKey: "sk",
    region: "us-east-1",
    bucket: "fanrecall",
  });
  assert.equal(c.chunkSize, 4194304);
  assert.equal(c.listenerUid, 0);
  assert.equal(c.user, null);
  assert.equal(c.logLevel, "info");
  assert.equal(c.metricsAddress, null);
  assert.equal(c.meshAdmin, null);
});

test("every FANRECALL_* variable of the deploy files, the same keys from --config, and flags over both", () => {
  withDir((dir) => {
    const keyFile = join(dir, "secret");
    writeFileSync(keyFile, "  from-file\n");
    const env = {
      FANRECALL_RUN_DIR: "/r",
      FANRECALL_S3_ENDPOINT: "https://s3.invalid",
      FANRECALL_S3_ACCESS_KEY: "ak",
      FANRECALL_S3_SECRET_KEY_FILE: keyFile,
      FANRECALL_S3_BUCKET: "b",
      FANRECALL_S3_REGION: "eu-west-1",
      FANRECALL_CHUNK_SIZE: "8192",
      FANRECALL_LISTENER_UID: "7",
      FANRECALL_RECALL_USER: "10001:10002",
      FANRECALL_LOG_LEVEL: "debug",
      FANRECALL_METRICS_ADDRESS: "0.0.0.0:9464",
      FANRECALL_MESH_ADMIN_ADDRESS: "[::]:9443",
      FANRECALL_MESH_TLS_CERT: "/c.pem",
      FANRECALL_MESH_TLS_KEY: "/k.pem",
      FANRECALL_MESH_TLS_CLIENT_CA: "/ca.pem",
    };
    const want = {
      runDir: "/r",
      s3: { endpoint: "https://s3.invalid", accessKey: "ak", secretKey: "from-file", region: "eu-west-1", bucket: "b" },
      keyPrefix: "fanrecall/",
      chunkSize: 8192,
      readaheadChunks: 16,
      parallelFetches: 8,
      cacheBytes: 256 * 1024 * 1024,
      fetchTimeoutMs: 30_000,
      listenerUid: 7,
      user: { uid: 10001, gid: 10002 },
      logLevel: "debug",
      metricsAddress: { host: "0.0.0.0", port: 9464 },
      meshAdmin: {
        address: { host: "::", port: 9443 },
        certFile: "/c.pem",
        keyFile: "/k.pem",
        clientCaFile: "/ca.pem",
      },
    };
    assert.deepEqual(loadRecallServiceConfig([], env, 0), want);
    const file = join(dir, "recall.json");
    writeFileSync(
      file,
      JSON.stringify({
        runDir: "/r",
        s3Endpoint: "https://s3.invalid",
        s3AccessKey: "ak",
        s3SecretKeyFile: keyFile,
        s3Bucket: "b",
        s3Region: "eu-west-1",
        chunkSize: 8192,
        listenerUid: 7,
        user: "10001:10002",
        logLevel: "debug",
        metricsAddress: "0.0.0.0:9464",
        meshAdminAddress: "[::]:9443",
        meshTlsCert: "/c.pem",
        meshTlsKey: "/k.pem",
        meshTlsClientCa: "/ca.pem",
      }),
    );
    assert.deepEqual(loadRecallServiceConfig(["--config", file], {}, 0), want);
    const flagged = loadRecallServiceConfig(
      ["--chunk-size", "16384", "--user", "5"],
      { ...env, FANRECALL_CONFIG: file },
      0,
    );
    assert.equal(flagged.chunkSize, 16384);
    assert.deepEqual(flagged.user, { uid: 5, gid: 5 });
  });
});

test("an empty optional setting means none, as before", () => {
  const c = loadRecallServiceConfig(
    [],
    { ...S3, FANRECALL_METRICS_ADDRESS: "", FANRECALL_S3_SECRET_KEY_FILE: "" },
    NOT_ROOT,
  );
  assert.equal(c.metricsAddress, null);
  assert.equal(c.s3.secretKey, "sk");
});

test("uids are integers, never NaN; the service's own uid is never 0 or 65534", () => {
  for (const bad of ["x", "", "-1", "1.5", "4294967295"]) {
    assert.throws(() => loadRecallServiceConfig(["--listener-uid", bad], S3, NOT_ROOT), {
      message: `--listener-uid: must be an integer from 0 to 4294967294, not '${bad}'`,
    });
  }
  for (const bad of ["0", "65534", "0:1000"]) {
    assert.throws(() => loadRecallServiceConfig(["--user", bad], S3, 0), {
      message: `--user: must be a uid other than 0 (root) and 65534 (nobody, which other programs run as), not '${bad}'`,
    });
  }
  assert.throws(() => loadRecallServiceConfig(["--user", "x"], S3, 0), /^Error: --user: must be UID or UID:GID/);
  assert.throws(() => loadRecallServiceConfig([], S3, 0), /started as root, it needs --user UID:GID/);
});

test("bad values are refused in the table's words, which --help shows", () => {
  const cases: Array<[string, string, string]> = [
    ["--chunk-size", "4097", "a multiple of 4096"],
    ["--chunk-size", "0", "an integer from 4096 to 1073741824"],
    ["--metrics-address", "9464", 'HOST:PORT (port 0 to 65535), or "" for none'],
    ["--mesh-admin-address", "h:70000", 'HOST:PORT (port 0 to 65535), or "" for none'],
    ["--s3-endpoint", "nowhere", "a URL such as http://127.0.0.1:9000"],
    ["--log-level", "loud", "fatal, error, warn, info, debug, trace or silent"],
  ];
  for (const [flag, value, rule] of cases) {
    assert.throws(() => loadRecallServiceConfig([flag, value], S3, NOT_ROOT), {
      message: `${flag}: must be ${rule}, not '${value}'`,
    });
    assert.ok(RECALL_SERVICE_HELP.includes(`${flag} `), flag);
  }
  assert.throws(
    () => loadRecallServiceConfig([], { ...S3, FANRECALL_S3_ENDPOINT: undefined }, NOT_ROOT),
    /FANRECALL_S3_ENDPOINT.*is required/,
  );
  assert.throws(() => loadRecallServiceConfig(["--mesh-tls-cert", "/c"], S3, NOT_ROOT), /need --mesh-admin-address/);
  assert.throws(() => loadRecallServiceConfig(["--mesh-admin-address", "h:1"], S3, NOT_ROOT), /TLS only/);
});
