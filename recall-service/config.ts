// config: the recall service's settings, from a JSON file (--config) and/or the environment
// (FANRECALL_*), flags winning over the file and the environment over nothing.
//
// Owns: parsing and validation, with clear messages, and reading the S3 secret key file.
// Must not own: other side effects. The S3 secret lives only here and in the store client;
// it is never logged (see main.ts redact). It comes from a file (--s3-secret-key-file,
// FANRECALL_S3_SECRET_KEY_FILE): a command line is world-readable, and an environment is
// inherited; FANRECALL_S3_SECRET_KEY is still read, for compatibility only.
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface RecallServiceConfig {
  readonly runDir: string;
  readonly s3: { endpoint: string; accessKey: string; secretKey: string; region: string; bucket: string };
  readonly keyPrefix: string;
  readonly chunkSize: number;
  readonly readaheadChunks: number;
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

export const RECALL_SERVICE_HELP = `Usage: fanrecall recall-service [--config FILE] [--run-dir DIR] [--user UID:GID]

Runs the unprivileged recall service: gRPC on RUN_DIR/recall/recall.sock, the fd channel
on RUN_DIR/recall/fd.sock. Started as root, it becomes --user (required then) before it
reads any input. It refuses to run as root or as nobody (65534): give it a uid of its own
(fanrecall start uses the system user 'fanrecall'), so that no other program can signal,
trace or read it. It makes itself non-dumpable first thing (its environment and memory are
then root's alone in /proc).

Settings (flag, environment variable, or key in the --config JSON file):
  --run-dir DIR          FANRECALL_RUN_DIR          runDir        (default /run/fanrecall)
  --s3-endpoint URL      FANRECALL_S3_ENDPOINT      s3Endpoint    (e.g. http://127.0.0.1:9000)
  --s3-access-key KEY    FANRECALL_S3_ACCESS_KEY    s3AccessKey
  --s3-secret-key-file FILE
                         FANRECALL_S3_SECRET_KEY_FILE  s3SecretKeyFile (a file holding the secret key,
                         read once at start, surrounding whitespace dropped; e.g. a systemd
                         credential or a Kubernetes Secret volume)
  --s3-secret-key KEY    FANRECALL_S3_SECRET_KEY    s3SecretKey   (compatibility only: a command
                         line is visible to every user; use the file)
  --s3-bucket NAME       FANRECALL_S3_BUCKET        s3Bucket      (default fanrecall)
  --s3-region NAME       FANRECALL_S3_REGION        s3Region      (default us-east-1)
  --chunk-size BYTES     FANRECALL_CHUNK_SIZE       chunkSize     (default 4194304)
  --user UID:GID         FANRECALL_RECALL_USER      user          (when started as root; not 0
                         or 65534)
  --listener-uid UID     FANRECALL_LISTENER_UID     listenerUid   (default 0)
  --log-level LEVEL      FANRECALL_LOG_LEVEL        logLevel      (default info)
  --metrics-address HOST:PORT
                         FANRECALL_METRICS_ADDRESS  metricsAddress (default none: no HTTP port;
                         e.g. 0.0.0.0:9464 serves Prometheus metrics at /metrics)

Mesh admin API (off unless an address is given; TLS only):
  --mesh-admin-address HOST:PORT
                         FANRECALL_MESH_ADMIN_ADDRESS  meshAdminAddress (e.g. 0.0.0.0:9443)
  --mesh-tls-cert FILE   FANRECALL_MESH_TLS_CERT    meshTlsCert   (PEM certificate chain, required)
  --mesh-tls-key FILE    FANRECALL_MESH_TLS_KEY     meshTlsKey    (PEM private key, required; readable
                         by the service user)
  --mesh-tls-client-ca FILE
                         FANRECALL_MESH_TLS_CLIENT_CA  meshTlsClientCa (clients must present a
                         certificate this CA signed; without it any TLS client may call)
  It serves recall.v1.AdminService (Status, Restore, Archive of one file by its path beneath
  a watched directory, relayed to the listener, which resolves the path itself) and
  grpc.health.v1. The fd channel and the listener's socket stay local unix sockets.

Health (grpc.health.v1 on the gRPC socket): "" is SERVING while the process serves;
"recall.v1.RecallService" is SERVING only while the object store answers and a listener
reports in (every 5 s), NOT_SERVING otherwise.
`;

type Source = Record<string, string | undefined>;

const KEYS: Record<string, { env: string; file: string }> = {
  "run-dir": { env: "FANRECALL_RUN_DIR", file: "runDir" },
  "s3-endpoint": { env: "FANRECALL_S3_ENDPOINT", file: "s3Endpoint" },
  "s3-access-key": { env: "FANRECALL_S3_ACCESS_KEY", file: "s3AccessKey" },
  "s3-secret-key": { env: "FANRECALL_S3_SECRET_KEY", file: "s3SecretKey" },
  "s3-secret-key-file": { env: "FANRECALL_S3_SECRET_KEY_FILE", file: "s3SecretKeyFile" },
  "s3-bucket": { env: "FANRECALL_S3_BUCKET", file: "s3Bucket" },
  "s3-region": { env: "FANRECALL_S3_REGION", file: "s3Region" },
  "chunk-size": { env: "FANRECALL_CHUNK_SIZE", file: "chunkSize" },
  user: { env: "FANRECALL_RECALL_USER", file: "user" },
  "listener-uid": { env: "FANRECALL_LISTENER_UID", file: "listenerUid" },
  "log-level": { env: "FANRECALL_LOG_LEVEL", file: "logLevel" },
  "metrics-address": { env: "FANRECALL_METRICS_ADDRESS", file: "metricsAddress" },
  "mesh-admin-address": { env: "FANRECALL_MESH_ADMIN_ADDRESS", file: "meshAdminAddress" },
  "mesh-tls-cert": { env: "FANRECALL_MESH_TLS_CERT", file: "meshTlsCert" },
  "mesh-tls-key": { env: "FANRECALL_MESH_TLS_KEY", file: "meshTlsKey" },
  "mesh-tls-client-ca": { env: "FANRECALL_MESH_TLS_CLIENT_CA", file: "meshTlsClientCa" },
};

/** Parses `--name value` flags into a map; throws on unknown flags or a missing value. */
export function parseFlags(argv: readonly string[], known: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(arg);
    if (!m || !known.includes(m[1])) throw new Error(`unknown option '${arg}'`);
    const value = m[2] ?? argv[++i];
    if (value === undefined) throw new Error(`option '--${m[1]}' needs a value`);
    out.set(m[1], value);
  }
  return out;
}

function positiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, not '${value}'`);
  return n;
}

function requireUser(value: string | undefined): string {
  if (value === undefined) throw new Error("started as root, it needs --user UID:GID (FANRECALL_RECALL_USER)");
  return value;
}

function parseUser(value: string): { uid: number; gid: number } {
  const m = /^(\d+)(?::(\d+))?$/.exec(value);
  if (!m) throw new Error(`user must be UID or UID:GID, not '${value}'`);
  const uid = Number(m[1]);
  checkOwnUid(uid);
  return { uid, gid: Number(m[2] ?? m[1]) };
}

/** The recall service needs a uid of its own: not root, not nobody (any program may become 65534). */
export function checkOwnUid(uid: number): void {
  if (uid === 0) throw new Error("the recall service must not run as root (user 0)");
  if (uid === 65534) {
    throw new Error(
      "the recall service must not run as nobody (65534), which other programs run as: give it a user of its own",
    );
  }
}

/** A config-file value as a string; objects and arrays are refused. */
function scalar(v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") return String(v);
  throw new Error("config values must be strings, numbers or booleans");
}

export function loadRecallServiceConfig(argv: readonly string[], env: Source = process.env): RecallServiceConfig {
  const flags = parseFlags(argv, [...Object.keys(KEYS), "config"]);
  let file: Record<string, unknown> = {};
  const configPath = flags.get("config") ?? env.FANRECALL_CONFIG;
  if (configPath) file = JSON.parse(readFileSync(configPath, "utf8")) as Record<string, unknown>;
  const get = (name: string): string | undefined => {
    const k = KEYS[name];
    const fromFile = file[k.file];
    return flags.get(name) ?? env[k.env] ?? scalar(fromFile);
  };
  const endpoint = get("s3-endpoint");
  const accessKey = get("s3-access-key");
  const secretKey = secretKeyFrom(get("s3-secret-key"), get("s3-secret-key-file"));
  if (!endpoint || !accessKey || !secretKey) {
    throw new Error(
      "the S3 endpoint, access key and secret key are required (FANRECALL_S3_ENDPOINT, _ACCESS_KEY, _SECRET_KEY_FILE)",
    );
  }
  new URL(endpoint);
  const chunkSize = positiveInt("chunk size", get("chunk-size") ?? String(4 * 1024 * 1024));
  if (chunkSize % 4096 !== 0) throw new Error("chunk size must be a multiple of 4096");
  const runDir = get("run-dir") ?? "/run/fanrecall";
  return {
    runDir,
    s3: {
      endpoint,
      accessKey,
      secretKey,
      region: get("s3-region") ?? "us-east-1",
      bucket: get("s3-bucket") ?? "fanrecall",
    },
    keyPrefix: "fanrecall/",
    chunkSize,
    readaheadChunks: 8,
    parallelFetches: 4,
    cacheBytes: 256 * 1024 * 1024,
    fetchTimeoutMs: 30_000,
    listenerUid: Number(get("listener-uid") ?? "0"),
    user: process.getuid?.() === 0 ? parseUser(requireUser(get("user"))) : null,
    logLevel: get("log-level") ?? "info",
    metricsAddress: parseAddress("metrics address", get("metrics-address")),
    meshAdmin: meshAdminConfig(get),
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

function meshAdminConfig(get: (name: string) => string | undefined): MeshAdminConfig | null {
  const address = parseAddress("mesh admin address", get("mesh-admin-address"));
  const certFile = get("mesh-tls-cert") ?? "";
  const keyFile = get("mesh-tls-key") ?? "";
  const clientCaFile = get("mesh-tls-client-ca") || null;
  if (address === null) {
    if (certFile || keyFile || clientCaFile) throw new Error("the mesh TLS settings need --mesh-admin-address");
    return null;
  }
  if (!certFile || !keyFile) {
    throw new Error("the mesh admin API is served over TLS only: --mesh-tls-cert and --mesh-tls-key are required");
  }
  return { address, certFile, keyFile, clientCaFile };
}

function parseAddress(what: string, value: string | undefined): { host: string; port: number } | null {
  if (value === undefined || value === "") return null;
  const m = /^(.*):(\d+)$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !m[1] || port > 65535) throw new Error(`${what} must be HOST:PORT, not '${value}'`);
  return { host: m[1].replace(/^\[(.*)\]$/, "$1"), port };
}

/** The recall service's sockets live in RUN_DIR/recall, a directory its own user owns. */
export function recallSocketPaths(runDir: string): { dir: string; grpc: string; fd: string } {
  const dir = join(runDir, "recall");
  return { dir, grpc: join(dir, "recall.sock"), fd: join(dir, "fd.sock") };
}
