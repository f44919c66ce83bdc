// config: the recall service's settings, from flags, the environment (FANRECALL_*) and/or a
// JSON file (--config), in that order of precedence.
//
// Owns: its settings table (parsed, checked and turned into --help by settings/), the rules
// that join several settings (the S3 credentials, the mesh TLS files, --user when root),
// and reading the S3 secret key file.
// Must not own: other side effects. The S3 secret lives only here and in the store client;
// it is never logged (see main.ts redact). It comes from a file (--s3-secret-key-file,
// FANRECALL_S3_SECRET_KEY_FILE): a command line is world-readable, and an environment is
// inherited; FANRECALL_S3_SECRET_KEY is still read, for compatibility only.
import { readFileSync } from "node:fs";
import { RUN_DIR_WORD, fdChannelSocketPath, recallGrpcSocketPath, recallSocketDir } from "../ipc/run-dir.js";
import { helpText } from "../settings/help-text.js";
import { loadSettings } from "../settings/settings.js";
import { CHUNK_SIZE_SETTING, LOG_LEVEL_SETTING, RUN_DIR_SETTING } from "../settings/shared-settings.js";
import type { CommandSpec, SettingsTable } from "../settings/setting-types.js";

export interface RecallServiceConfig {
  readonly runDir: string;
  readonly s3: { endpoint: string; accessKey: string; secretKey: string; region: string; bucket: string };
  readonly keyPrefix: string;
  readonly chunkSize: number;
  /** Chunks past a ranged read whose GETs start ahead of need (fixed here, not a flag). */
  readonly readaheadChunks: number;
  /** Chunks one recall fetches and writes at once (fixed here, not a flag). */
  readonly parallelFetches: number;
  readonly cacheBytes: number;
  readonly fetchTimeoutMs: number;
  /** uid the fd-channel peer (the listener) must have. */
  readonly listenerUid: number;
  /** When started as root: the user to become before reading any input. */
  readonly user: { uid: number; gid: number } | null;
  readonly logLevel: string;
  /** HOST:PORT of the Prometheus /metrics endpoint; null = not served. */
  readonly metricsAddress: { host: string; port: number } | null;
  /** The mesh admin API (AdminService + health over TLS); null = not served. */
  readonly meshAdmin: MeshAdminConfig | null;
}

export interface MeshAdminConfig {
  readonly address: { host: string; port: number };
  /** PEM files, read when the server starts (after the privilege drop: the service user must be able to read them). */
  readonly certFile: string;
  readonly keyFile: string;
  /** When set, clients must present a certificate this CA signed; otherwise any TLS client may call. */
  readonly clientCaFile: string | null;
}

/** The recall service's own uid: never root, never nobody. */
const OWN_UID = "a uid other than 0 (root) and 65534 (nobody, which other programs run as)";

const SETTINGS = [
  RUN_DIR_SETTING,
  {
    name: "s3-endpoint",
    key: "s3Endpoint",
    env: "FANRECALL_S3_ENDPOINT",
    type: "string",
    arg: "URL",
    pattern: /^[a-z][a-z0-9+.-]*:\/\/[^\s/]+/i,
    shape: "a URL such as http://127.0.0.1:9000",
    required: true,
    help: "the object store",
  },
  {
    name: "s3-access-key",
    key: "s3AccessKey",
    env: "FANRECALL_S3_ACCESS_KEY",
    type: "string",
    arg: "KEY",
    help: "its access key",
  },
  {
    name: "s3-secret-key-file",
    key: "s3SecretKeyFile",
    env: "FANRECALL_S3_SECRET_KEY_FILE",
    type: "path",
    arg: "FILE",
    allowEmpty: true,
    help:
      "a file holding the secret key, read once at start, surrounding whitespace dropped; " +
      "a systemd credential or a Kubernetes Secret volume, say",
  },
  {
    name: "s3-secret-key",
    key: "s3SecretKey",
    env: "FANRECALL_S3_SECRET_KEY",
    type: "string",
    arg: "KEY",
    help: "compatibility only: a command line is visible to every user, an environment is inherited; use the file",
  },
  {
    name: "s3-bucket",
    key: "s3Bucket",
    env: "FANRECALL_S3_BUCKET",
    type: "string",
    arg: "NAME",
    default: "fanrecall",
    help: "the bucket",
  },
  {
    name: "s3-region",
    key: "s3Region",
    env: "FANRECALL_S3_REGION",
    type: "string",
    arg: "NAME",
    default: "us-east-1",
    help: "its region",
  },
  CHUNK_SIZE_SETTING,
  {
    name: "user",
    key: "user",
    env: "FANRECALL_RECALL_USER",
    type: "user",
    check: (u: { uid: number }) => (u.uid === 0 || u.uid === 65534 ? OWN_UID : null),
    help: "the user to become when started as root (required then); not 0 or 65534",
  },
  {
    name: "listener-uid",
    key: "listenerUid",
    env: "FANRECALL_LISTENER_UID",
    type: "int",
    arg: "UID",
    min: 0,
    max: 4294967294,
    default: 0,
    help: "the uid the fd channel's peer (the listener) must have",
  },
  LOG_LEVEL_SETTING,
  {
    name: "metrics-address",
    key: "metricsAddress",
    env: "FANRECALL_METRICS_ADDRESS",
    type: "address",
    defaultText: "none: no HTTP port",
    help: "serve Prometheus metrics at /metrics there (e.g. 0.0.0.0:9464)",
  },
  {
    name: "mesh-admin-address",
    key: "meshAdminAddress",
    env: "FANRECALL_MESH_ADMIN_ADDRESS",
    type: "address",
    defaultText: "none",
    help: "serve the mesh admin API there, over TLS only (e.g. 0.0.0.0:9443)",
  },
  {
    name: "mesh-tls-cert",
    key: "meshTlsCert",
    env: "FANRECALL_MESH_TLS_CERT",
    type: "path",
    arg: "FILE",
    allowEmpty: true,
    help: "PEM certificate chain of the mesh admin API (required with an address)",
  },
  {
    name: "mesh-tls-key",
    key: "meshTlsKey",
    env: "FANRECALL_MESH_TLS_KEY",
    type: "path",
    arg: "FILE",
    allowEmpty: true,
    help: "its PEM private key (required with an address; readable by the service user)",
  },
  {
    name: "mesh-tls-client-ca",
    key: "meshTlsClientCa",
    env: "FANRECALL_MESH_TLS_CLIENT_CA",
    type: "path",
    arg: "FILE",
    allowEmpty: true,
    help: "clients must present a certificate this CA signed; without it any TLS client may call",
  },
] as const satisfies SettingsTable;

export const RECALL_SERVICE_SPEC = {
  usage: "fanrecall recall-service [--config FILE] [--run-dir DIR] [--user UID:GID] [options]",
  about: `Runs the unprivileged recall service: gRPC on ${recallGrpcSocketPath(RUN_DIR_WORD)}, the fd channel
on ${fdChannelSocketPath(RUN_DIR_WORD)}. Started as root, it becomes --user (required then) before it
reads any input. It refuses to run as root or as nobody (65534): give it a uid of its own
(fanrecall start uses the system user 'fanrecall'), so that no other program can signal,
trace or read it. It makes itself non-dumpable first thing (its environment and memory are
then root's alone in /proc).`,
  settings: SETTINGS,
  configFile: true,
  footer: `The mesh admin API (off unless an address is given; TLS only) serves recall.v1.AdminService
(Status, Restore, Archive of one file by its path beneath a watched directory, relayed to the
listener, which resolves the path itself) and grpc.health.v1. The fd channel and the
listener's socket stay local unix sockets.

Health (grpc.health.v1 on the gRPC socket): "" is SERVING while the process serves;
"recall.v1.RecallService" is SERVING only while the object store answers and a listener
reports in (every 5 s), NOT_SERVING otherwise.`,
} as const satisfies CommandSpec;

export const RECALL_SERVICE_HELP = helpText(RECALL_SERVICE_SPEC);

/** The recall service needs a uid of its own: not root, not nobody (any program may become 65534). */
export function checkOwnUid(uid: number): void {
  if (uid === 0) throw new Error("the recall service must not run as root (user 0)");
  if (uid === 65534) {
    throw new Error(
      "the recall service must not run as nobody (65534), which other programs run as: give it a user of its own",
    );
  }
}

export function loadRecallServiceConfig(
  argv: readonly string[],
  env: Record<string, string | undefined> = process.env,
  uid: number | undefined = process.getuid?.(),
): RecallServiceConfig {
  const s = loadSettings(RECALL_SERVICE_SPEC, argv, env);
  const accessKey = s.s3AccessKey;
  const secretKey = secretKeyFrom(s.s3SecretKey, s.s3SecretKeyFile);
  if (!accessKey || !secretKey) {
    throw new Error(
      "the S3 endpoint, access key and secret key are required (FANRECALL_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY_FILE)",
    );
  }
  if (uid === 0 && s.user === undefined) {
    throw new Error("started as root, it needs --user UID:GID (FANRECALL_RECALL_USER)");
  }
  return {
    runDir: s.runDir,
    s3: { endpoint: s.s3Endpoint, accessKey, secretKey, region: s.s3Region, bucket: s.s3Bucket },
    keyPrefix: "fanrecall/",
    chunkSize: s.chunkSize,
    readaheadChunks: 16,
    parallelFetches: 8,
    cacheBytes: 256 * 1024 * 1024,
    fetchTimeoutMs: 30_000,
    listenerUid: s.listenerUid,
    user: uid === 0 ? (s.user ?? null) : null,
    logLevel: s.logLevel,
    metricsAddress: s.metricsAddress ?? null,
    meshAdmin: meshAdminConfig(s),
  };
}

/** The secret key, from its file (preferred) or as given; both at once is a mistake. */
function secretKeyFrom(inline: string | undefined, file: string | undefined): string | undefined {
  if (!file) return inline;
  if (inline) throw new Error("give the S3 secret key once: --s3-secret-key-file or FANRECALL_S3_SECRET_KEY, not both");
  const key = readFileSync(file, "utf8").trim();
  if (key === "") throw new Error(`the S3 secret key file ${file} is empty`);
  return key;
}

function meshAdminConfig(s: {
  meshAdminAddress: { host: string; port: number } | undefined;
  meshTlsCert: string | undefined;
  meshTlsKey: string | undefined;
  meshTlsClientCa: string | undefined;
}): MeshAdminConfig | null {
  const certFile = s.meshTlsCert ?? "";
  const keyFile = s.meshTlsKey ?? "";
  const clientCaFile = s.meshTlsClientCa || null;
  if (s.meshAdminAddress === undefined) {
    if (certFile || keyFile || clientCaFile) throw new Error("the mesh TLS settings need --mesh-admin-address");
    return null;
  }
  if (!certFile || !keyFile) {
    throw new Error("the mesh admin API is served over TLS only: --mesh-tls-cert and --mesh-tls-key are required");
  }
  return { address: s.meshAdminAddress, certFile, keyFile, clientCaFile };
}

/** The recall service's sockets live in RUN_DIR/recall, a directory its own user owns (ipc/run-dir.ts). */
export function recallSocketPaths(runDir: string): { dir: string; grpc: string; fd: string } {
  return { dir: recallSocketDir(runDir), grpc: recallGrpcSocketPath(runDir), fd: fdChannelSocketPath(runDir) };
}
