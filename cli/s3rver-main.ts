// s3rver-main: entry point of the embedded demo/test S3 server (a child process of embedded-s3.ts).
//
// Owns: one s3rver 3.7.1 instance (koa app + http.Server) serving --dir on --address:--port, and
//   the ListMultipartUploads shim: minio-js v8 calls `GET /<bucket>?uploads` before every multipart
//   upload and s3rver 3.7.1 answers NotImplemented, so the shim (inserted just before s3rver's
//   router, after its logging/XML/vhost middleware) answers it with an empty list, after s3rver's
//   own authentication middleware has checked the access key.
// Must not own: any fanrecall logic, config or logging policy; it only prints one JSON ready line
//   `{"ready":true,"port":N}` on stdout and errors on stderr.
//   With --credentials-dir (fanrecall start): the only account is the one in DIR/access-key and
//   DIR/secret-key (s3rver's well-known S3RVER key is revoked) and a request naming no key or
//   another one is refused before s3rver routes it (s3rver 3.7.1 does not check V4 signatures,
//   so the access key, kept 0600 like the secret, is what it checks). With --peer-uid: every
//   accepted connection whose client socket is not owned by that uid (see tcp-peer-uid.ts) is
//   closed before a byte of it is read: that, not the credentials, is what keeps other users out.
//   The process makes itself non-dumpable before it reads anything (its environment and memory
//   are then root's alone in /proc).
// Holds: the listening socket and the client connections; with --watch-stdin it reads stdin and
//   exits when it closes (the parent died). SIGTERM/SIGINT close the server and exit 0 (bounded).
import { constants, readFileSync } from "node:fs";
import { access, mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import type { Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { setNonDumpable } from "../native/index.js";
import { tcpPeerUid } from "./tcp-peer-uid.js";

const USAGE = `Usage: s3rver-main --dir DIR [--address 127.0.0.1] [--port 0] [--silent] [--watch-stdin]
                   [--credentials-dir CDIR] [--peer-uid UID]

Runs s3rver 3.7.1 (region us-east-1, path-style) on ADDRESS:PORT with its data in DIR, plus a
ListMultipartUploads shim for minio-js. Port 0 picks a free port. When listening, prints
{"ready":true,"port":N} on stdout. --watch-stdin: exit when stdin reaches EOF.
--credentials-dir: the only credentials are CDIR/access-key and CDIR/secret-key (otherwise the
  well-known S3RVER/S3RVER); requests naming no access key or another one are refused.
--peer-uid: connections from sockets not owned by UID are closed unread.
`;
const CLOSE_TIMEOUT_MS = 3000;

/** The parts of a koa context the shim uses. */
interface ShimContext {
  method: string;
  path: string;
  query: Record<string, string | string[] | undefined>;
  params: Record<string, string>;
  type: string;
  body: unknown;
  app: { store: { getBucket(name: string): Promise<unknown> } };
}
type Next = () => Promise<unknown>;
type Middleware = (ctx: ShimContext, next: Next) => Promise<unknown>;

/** The parts of s3rver 3.7.1 (a koa Application subclass, CommonJS, untyped) used here. */
interface S3rverInstance {
  middleware: Array<Middleware & { router?: unknown }>;
  httpServer?: Server;
  run(): Promise<AddressInfo>;
  on(event: "error", listener: (err: unknown) => void): unknown;
  close(): Promise<void>;
}
interface S3rverOptions {
  directory: string;
  address: string;
  port: number;
  silent: boolean;
  vhostBuckets: boolean;
}
type S3rverClass = new (options: S3rverOptions) => S3rverInstance;
type S3ErrorClass = new (code: string, message: string, detail?: Record<string, string>) => Error;

const requireCjs = createRequire(import.meta.url);
const S3rver = requireCjs("s3rver") as unknown as S3rverClass;
const authentication = requireCjs("s3rver/lib/middleware/authentication") as unknown as () => Middleware;
const S3Error = requireCjs("s3rver/lib/models/error") as unknown as S3ErrorClass;
interface AwsAccountModule {
  DUMMY_ACCOUNT: { createKeyPair(id: string, secret: string): void; revokeAccessKey(id: string): void };
}
const AwsAccount = requireCjs("s3rver/lib/models/account") as unknown as AwsAccountModule;

function xmlEscape(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

function queryString(ctx: ShimContext, name: string): string {
  const v = ctx.query[name];
  return typeof v === "string" ? v : "";
}

/** Answers ListMultipartUploads (`GET /<bucket>?uploads`) with an empty, untruncated list. */
function listMultipartUploadsShim(): Middleware {
  const authenticate = authentication();
  return async (ctx, next) => {
    const m = /^\/([^/]+)\/?$/.exec(ctx.path);
    if (ctx.method !== "GET" || m === null || !("uploads" in ctx.query)) return next();
    const bucket = decodeURIComponent(m[1] ?? "");
    ctx.params = { bucket };
    return authenticate(ctx, async () => {
      if (!(await ctx.app.store.getBucket(bucket))) {
        throw new S3Error("NoSuchBucket", "The specified bucket does not exist", { BucketName: bucket });
      }
      const field = (tag: string, value: string): string => `<${tag}>${xmlEscape(value)}</${tag}>`;
      ctx.type = "application/xml";
      ctx.body =
        '<?xml version="1.0" encoding="UTF-8"?>\n' +
        '<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
        field("Bucket", bucket) +
        field("KeyMarker", queryString(ctx, "key-marker")) +
        field("UploadIdMarker", queryString(ctx, "upload-id-marker")) +
        field("NextKeyMarker", "") +
        field("NextUploadIdMarker", "") +
        field("Delimiter", queryString(ctx, "delimiter")) +
        field("Prefix", queryString(ctx, "prefix")) +
        field("MaxUploads", queryString(ctx, "max-uploads") || "1000") +
        field("IsTruncated", "false") +
        "</ListMultipartUploadsResult>";
    });
  };
}

/** The access key a request names (V4 or V2, header or query), or null. */
function requestAccessKey(
  ctx: ShimContext & { headers: Record<string, string | string[] | undefined> },
): string | null {
  const auth = ctx.headers.authorization;
  if (typeof auth === "string") {
    const m = /Credential=([^/,\s]+)\//.exec(auth) ?? /^AWS ([^:\s]+):/.exec(auth);
    return m ? m[1] : null;
  }
  const cred = queryString(ctx, "X-Amz-Credential");
  if (cred) return cred.split("/")[0] ?? null;
  return queryString(ctx, "AWSAccessKeyId") || null;
}

/** Refuses every request that does not name `accessKey` (anonymous requests included). */
function requireAccessKey(accessKey: string): Middleware {
  return async (ctx, next) => {
    if (requestAccessKey(ctx as Parameters<typeof requestAccessKey>[0]) !== accessKey) {
      throw new S3Error("AccessDenied", "Access Denied");
    }
    return next();
  };
}

/** Makes the keys in dir the only account. */
function useCredentials(dir: string): string {
  const read = (name: string): string => {
    const key = readFileSync(join(dir, name), "utf8").trim();
    if (key === "") throw new Error(`${join(dir, name)} is empty`);
    return key;
  };
  const accessKey = read("access-key");
  AwsAccount.DUMMY_ACCOUNT.revokeAccessKey("S3RVER");
  AwsAccount.DUMMY_ACCOUNT.createKeyPair(accessKey, read("secret-key"));
  return accessKey;
}

/** Closes, before anything is read from it, every connection whose client socket `uid` does not own. */
function guardPeers(server: Server, uid: number): void {
  server.on("connection", (socket: Socket) => {
    let peer: number | null = null;
    try {
      peer = tcpPeerUid({
        localAddress: socket.localAddress ?? "",
        localPort: socket.localPort ?? 0,
        remoteAddress: socket.remoteAddress ?? "",
        remotePort: socket.remotePort ?? 0,
      });
    } catch (err: unknown) {
      process.stderr.write(`s3rver-main: peer lookup failed: ${err instanceof Error ? err.message : String(err)}\n`);
    }
    if (peer !== uid) {
      process.stderr.write(`s3rver-main: refused a connection from uid ${peer ?? "unknown"}\n`);
      socket.destroy();
    }
  });
}

/** Inserts the shim right before s3rver's router (the last middleware its constructor adds). */
function installShim(server: S3rverInstance, accessKey: string | null): void {
  const last = server.middleware.at(-1);
  if (last === undefined || typeof last.router !== "object") {
    throw new Error("s3rver layout changed: its last middleware is not the router; cannot insert the shim");
  }
  const ours = accessKey === null ? [] : [requireAccessKey(accessKey)];
  server.middleware.splice(server.middleware.length - 1, 0, ...ours, listMultipartUploadsShim());
}

interface Cli {
  dir: string;
  address: string;
  port: number;
  silent: boolean;
  watchStdin: boolean;
  credentialsDir: string | null;
  peerUid: number | null;
}

function parseCli(): Cli {
  const { values } = parseArgs({
    options: {
      dir: { type: "string" },
      address: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "0" },
      silent: { type: "boolean", default: false },
      "watch-stdin": { type: "boolean", default: false },
      "credentials-dir": { type: "string" },
      "peer-uid": { type: "string" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const port = Number(values.port);
  const peerUid = values["peer-uid"] === undefined ? null : Number(values["peer-uid"]);
  const badPeer = peerUid !== null && !(Number.isInteger(peerUid) && peerUid >= 0);
  if (values.dir === undefined || !Number.isInteger(port) || port < 0 || port > 65535 || badPeer) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  return {
    dir: values.dir,
    address: values.address,
    port,
    silent: values.silent,
    watchStdin: values["watch-stdin"],
    credentialsDir: values["credentials-dir"] ?? null,
    peerUid,
  };
}

async function main(): Promise<void> {
  // Before anything secret is read: /proc/PID/{environ,mem,...} become root's alone.
  setNonDumpable();
  const cli = parseCli();
  const accessKey = cli.credentialsDir === null ? null : useCredentials(cli.credentialsDir);
  // s3rver touches the dir only on the first request: fail now, clearly, if we cannot use it.
  await mkdir(cli.dir, { recursive: true });
  await access(cli.dir, constants.R_OK | constants.W_OK | constants.X_OK);
  const server = new S3rver({
    directory: cli.dir,
    address: cli.address,
    port: cli.port,
    silent: cli.silent,
    vhostBuckets: false,
  });
  installShim(server, accessKey);
  // S3 errors (4xx answers) are normal; anything else became an InternalError: say why on stderr,
  // even with --silent, so the parent can log it.
  server.on("error", (err: unknown) => {
    if (err instanceof S3Error) return;
    process.stderr.write(
      `s3rver-main: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
  });
  const addr = await server.run();
  // Attached before this tick ends, so before any connection is accepted (the port is not announced yet).
  if (cli.peerUid !== null && server.httpServer) guardPeers(server.httpServer, cli.peerUid);
  else if (cli.peerUid !== null) throw new Error("s3rver layout changed: no httpServer to guard");
  let closing = false;
  const shutdown = (): void => {
    if (closing) return;
    closing = true;
    setTimeout(() => process.exit(0), CLOSE_TIMEOUT_MS).unref();
    server.httpServer?.closeIdleConnections();
    server.close().then(
      () => process.exit(0),
      () => process.exit(0),
    );
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
  if (cli.watchStdin) {
    process.stdin.on("end", shutdown).on("error", shutdown).resume();
  }
  process.stdout.write(`${JSON.stringify({ ready: true, port: addr.port })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`s3rver-main: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
