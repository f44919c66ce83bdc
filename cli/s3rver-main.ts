// s3rver-main: entry point of the embedded demo/test S3 server (a child process of embedded-s3.ts).
//
// Owns: one s3rver 3.7.1 instance (koa app + http.Server) serving --dir on --address:--port, and
//   the ListMultipartUploads shim: minio-js v8 calls `GET /<bucket>?uploads` before every multipart
//   upload and s3rver 3.7.1 answers NotImplemented, so the shim (inserted just before s3rver's
//   router, after its logging/XML/vhost middleware) answers it with an empty list, after s3rver's
//   own authentication middleware has checked the access key.
// Must not own: any fanrecall logic, config or logging policy; it only prints one JSON ready line
//   `{"ready":true,"port":N}` on stdout and errors on stderr.
// Holds: the listening socket and the client connections; with --watch-stdin it reads stdin and
//   exits when it closes (the parent died). SIGTERM/SIGINT close the server and exit 0 (bounded).
import { constants } from "node:fs";
import { access, mkdir } from "node:fs/promises";
import { createRequire } from "node:module";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { parseArgs } from "node:util";

const USAGE = `Usage: s3rver-main --dir DIR [--address 127.0.0.1] [--port 0] [--silent] [--watch-stdin]

Runs s3rver 3.7.1 (credentials S3RVER/S3RVER, region us-east-1, path-style) on ADDRESS:PORT with its
data in DIR, plus a ListMultipartUploads shim for minio-js. Port 0 picks a free port. When listening,
prints {"ready":true,"port":N} on stdout. --watch-stdin: exit when stdin reaches EOF.
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

/** Inserts the shim right before s3rver's router (the last middleware its constructor adds). */
function installShim(server: S3rverInstance): void {
  const last = server.middleware.at(-1);
  if (last === undefined || typeof last.router !== "object") {
    throw new Error("s3rver layout changed: its last middleware is not the router; cannot insert the shim");
  }
  server.middleware.splice(server.middleware.length - 1, 0, listMultipartUploadsShim());
}

function parseCli(): { dir: string; address: string; port: number; silent: boolean; watchStdin: boolean } {
  const { values } = parseArgs({
    options: {
      dir: { type: "string" },
      address: { type: "string", default: "127.0.0.1" },
      port: { type: "string", default: "0" },
      silent: { type: "boolean", default: false },
      "watch-stdin": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const port = Number(values.port);
  if (values.dir === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(USAGE);
    process.exit(2);
  }
  return { dir: values.dir, address: values.address, port, silent: values.silent, watchStdin: values["watch-stdin"] };
}

async function main(): Promise<void> {
  const cli = parseCli();
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
  installShim(server);
  // S3 errors (4xx answers) are normal; anything else became an InternalError: say why on stderr,
  // even with --silent, so the parent can log it.
  server.on("error", (err: unknown) => {
    if (err instanceof S3Error) return;
    process.stderr.write(
      `s3rver-main: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
  });
  const addr = await server.run();
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
