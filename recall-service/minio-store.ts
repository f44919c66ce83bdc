// minio-store: ObjectStore on the `minio` client (S3 SigV4, path-style), for MinIO in
// production and Swift s3api / s3rver in tests.
//
// Owns: the minio client, its keep-alive HTTP agent, and turning aborts into destroyed
// streams. Must not own: retry policy or checksums (callers verify every byte). Holds
// sockets to the store only.
import http from "node:http";
import https from "node:https";
import { Client } from "minio";
import type { Readable } from "node:stream";
import type { ListPage, ListedObject, ObjectLocation, ObjectStore } from "./object-store.js";

export interface S3Settings {
  readonly endpoint: string;
  readonly accessKey: string;
  readonly secretKey: string;
  readonly region: string;
}

function abortError(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason : Object.assign(new Error("aborted"), { name: "AbortError" });
}

async function readAll(stream: Readable, signal: AbortSignal, expected: number): Promise<Buffer> {
  const onAbort = () => stream.destroy(abortError(signal));
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const parts: Buffer[] = [];
    let total = 0;
    for await (const part of stream) {
      const b = part as Buffer;
      parts.push(b);
      total += b.length;
      if (total > expected) throw new Error(`store returned more than the ${expected} bytes asked for`);
    }
    return parts.length === 1 ? parts[0] : Buffer.concat(parts, total);
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}

export class MinioStore implements ObjectStore {
  private readonly client: Client;

  constructor(settings: S3Settings, options: { partSize?: number; maxSockets?: number } = {}) {
    const url = new URL(settings.endpoint);
    const useSSL = url.protocol === "https:";
    const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 16 };
    this.client = new Client({
      endPoint: url.hostname,
      port: url.port ? Number(url.port) : useSSL ? 443 : 80,
      useSSL,
      accessKey: settings.accessKey,
      secretKey: settings.secretKey,
      region: settings.region,
      pathStyle: true,
      partSize: options.partSize ?? 64 * 1024 * 1024,
      transportAgent: useSSL ? new https.Agent(agentOptions) : new http.Agent(agentOptions),
    });
  }

  async getRange(loc: ObjectLocation, offset: number, length: number, signal: AbortSignal): Promise<Buffer> {
    if (signal.aborted) throw abortError(signal);
    const opts = loc.versionId ? { versionId: loc.versionId } : {};
    const stream = await this.client.getPartialObject(loc.bucket, loc.key, offset, length, opts);
    return readAll(stream, signal, length);
  }

  async getRangeStream(loc: ObjectLocation, offset: number, length: number, signal: AbortSignal): Promise<Readable> {
    if (signal.aborted) throw abortError(signal);
    const opts = loc.versionId ? { versionId: loc.versionId } : {};
    const stream = await this.client.getPartialObject(loc.bucket, loc.key, offset, length, opts);
    const onAbort = () => stream.destroy(abortError(signal));
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    stream.once("close", () => signal.removeEventListener("abort", onAbort));
    return stream;
  }

  async getStream(loc: ObjectLocation, signal: AbortSignal): Promise<Readable> {
    if (signal.aborted) throw abortError(signal);
    const opts = loc.versionId ? { versionId: loc.versionId } : {};
    const stream = await this.client.getObject(loc.bucket, loc.key, opts);
    signal.addEventListener("abort", () => stream.destroy(abortError(signal)), { once: true });
    return stream;
  }

  async put(
    bucket: string,
    key: string,
    body: Readable | Buffer,
    size: number,
    metadata: Record<string, string>,
  ): Promise<{ versionId: string }> {
    const info = await this.client.putObject(bucket, key, body, size, metadata);
    return { versionId: info.versionId ?? "" };
  }

  async stat(loc: ObjectLocation, signal: AbortSignal): Promise<{ size: number } | null> {
    if (signal.aborted) throw abortError(signal);
    try {
      const opts = loc.versionId ? { versionId: loc.versionId } : {};
      const st = await this.client.statObject(loc.bucket, loc.key, opts);
      return { size: st.size };
    } catch (err: unknown) {
      const code = (err as { code?: unknown }).code;
      if (code === "NotFound" || code === "NoSuchKey") return null;
      throw err;
    }
  }

  async ping(bucket: string, signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw abortError(signal);
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(abortError(signal));
      signal.addEventListener("abort", onAbort, { once: true });
      this.client.bucketExists(bucket).then(
        () => resolve(),
        (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))),
      );
    });
  }

  async ensureBucket(bucket: string): Promise<void> {
    if (await this.client.bucketExists(bucket)) return;
    try {
      await this.client.makeBucket(bucket);
    } catch (err: unknown) {
      const code = (err as { code?: unknown }).code;
      if (code !== "BucketAlreadyOwnedByYou" && code !== "BucketAlreadyExists") throw err;
    }
  }

  async list(
    bucket: string,
    prefix: string,
    startAfter: string,
    maxKeys: number,
    signal: AbortSignal,
  ): Promise<ListPage> {
    if (signal.aborted) throw abortError(signal);
    const stream = this.client.listObjectsV2(bucket, prefix, true, startAfter);
    const onAbort = () => stream.destroy(abortError(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    const objects: ListedObject[] = [];
    try {
      for await (const item of stream as AsyncIterable<{ name?: string; size?: number; lastModified?: Date }>) {
        if (item.name === undefined) continue;
        if (objects.length === maxKeys) return { objects, truncated: true };
        objects.push({ key: item.name, size: item.size ?? 0, lastModifiedMs: item.lastModified?.getTime() ?? 0 });
      }
      return { objects, truncated: false };
    } finally {
      signal.removeEventListener("abort", onAbort);
      stream.destroy();
    }
  }

  async remove(bucket: string, keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    const results = await this.client.removeObjects(bucket, [...keys]);
    const failed = results.find((r) => r?.Error && r.Error.Code !== "NoSuchKey");
    if (failed?.Error) {
      throw Object.assign(new Error(`delete of ${failed.Error.Key ?? "?"}: ${failed.Error.Message ?? ""}`), {
        code: failed.Error.Code,
      });
    }
  }
}
