// namespace-client: the root CLI's side of the namespace RPCs (reconcile, rebuild, undelete).
// The recall service holds the S3 credentials; this asks it to list, read, store and delete
// objects of one namespace. Every reply is hostile input: pages and reads are bounded, a
// read must return the bytes asked for, and a failure is an error with a reason of the
// closed set.
//
// Owns: one gRPC channel to the recall service's unix socket (closed by close()). Must not
// own: what the objects mean (namespace-history.ts). Holds no fds.
import { join } from "node:path";
import type { ReasonName } from "../proto/index.js";
import { Reason, RecallService, createClient, reasonFromProto } from "../proto/index.js";
import { MAX_PART_BYTES, encodeFileRecord, isNamespaceObjectName } from "../proto/namespace-format.js";
import type { FileRecord } from "../proto/namespace-format.js";

const CALL_MS = 60_000;
const DELETE_BATCH = 1000;
/** The largest reply accepted: one 4 MiB read plus framing. */
const MAX_REPLY_BYTES = MAX_PART_BYTES + 64 * 1024;

export class NamespaceError extends Error {
  override readonly name = "NamespaceError";
  constructor(
    readonly reason: ReasonName,
    message: string,
  ) {
    super(message);
  }
}

export interface ListedName {
  readonly name: string;
  readonly size: number;
  readonly lastModifiedMs: number;
}

type Area = "objects" | "records" | "snapshots";

function check(reply: { reason?: Reason; message?: string }, ok: Reason, what: string): void {
  if (reply.reason !== ok) {
    const reason = reasonFromProto(reply.reason ?? Reason.UNSPECIFIED);
    throw new NamespaceError(reason, `${what}: ${reply.message || reason}`);
  }
}

export class NamespaceClient {
  private readonly handle;

  constructor(
    runDir: string,
    readonly namespace: string,
  ) {
    this.handle = createClient(RecallService, `unix://${join(runDir, "recall", "recall.sock")}`, undefined, {
      "grpc.max_receive_message_length": MAX_REPLY_BYTES,
    });
  }

  /** Every object of an area after `startAfter`, in name order, at most `limit` of them. */
  async *list(area: Area, startAfter = "", limit = 50_000_000): AsyncGenerator<ListedName> {
    let after = startAfter;
    let seen = 0;
    for (;;) {
      const page = await this.handle.client.listNamespace(
        { namespace: this.namespace, area, startAfter: after, maxKeys: 1000 },
        { timeoutMs: CALL_MS },
      );
      check(page, Reason.STORED, `listing ${area}`);
      if (page.objects.length > 1000) throw new NamespaceError("protocol-error", "listing page too long");
      for (const o of page.objects) {
        if (!isNamespaceObjectName(o.name) || !o.name.startsWith(`${area}/`) || o.name <= after) {
          throw new NamespaceError("protocol-error", "listing out of order or outside its area");
        }
        after = o.name;
        if (++seen > limit) throw new NamespaceError("protocol-error", `more than ${limit} objects in ${area}`);
        yield { name: o.name, size: Number(o.size), lastModifiedMs: Number(o.lastModifiedUnixMs) };
      }
      if (!page.truncated || page.objects.length === 0) return;
    }
  }

  /** The whole of a records/ or snapshots/ object, refused when larger than `maxBytes`. */
  async read(name: string, maxBytes: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    let offset = 0;
    let size = -1;
    while (size < 0 || offset < size) {
      const length = Math.min(MAX_PART_BYTES, maxBytes + 1);
      const r = await this.handle.client.getNamespaceObject(
        { namespace: this.namespace, name, offset: BigInt(offset), length },
        { timeoutMs: CALL_MS },
      );
      check(r, Reason.STORED, `reading ${name}`);
      if (size < 0) size = Number(r.size);
      if (Number(r.size) !== size) throw new NamespaceError("protocol-error", `${name} changed while read`);
      if (size > maxBytes) throw new NamespaceError("protocol-error", `${name} is larger than ${maxBytes} bytes`);
      if (r.data.length !== Math.min(length, size - offset)) {
        throw new NamespaceError("protocol-error", `short or long read of ${name}`);
      }
      parts.push(Buffer.from(r.data));
      offset += r.data.length;
    }
    return Buffer.concat(parts);
  }

  /** Whether the object a record names is still in the store. */
  async exists(r: FileRecord): Promise<boolean> {
    const reply = await this.handle.client.statObject(
      { object: { bucket: r.bucket, key: r.key, versionId: r.versionId } },
      { timeoutMs: CALL_MS },
    );
    if (reply.exists) return true;
    if (reply.reason === Reason.OBJECT_MISSING) return false;
    const reason = reasonFromProto(reply.reason);
    throw new NamespaceError(reason, `cannot tell whether ${r.key} exists (${reason})`);
  }

  async put(name: string, data: Buffer): Promise<void> {
    const r = await this.handle.client.putNamespaceObject(
      { namespace: this.namespace, name, data },
      { timeoutMs: CALL_MS },
    );
    check(r, Reason.STORED, `storing ${name}`);
  }

  async writeRecord(record: FileRecord): Promise<void> {
    const r = await this.handle.client.writeRecord(
      { namespace: this.namespace, record: encodeFileRecord(record) },
      { timeoutMs: CALL_MS },
    );
    check(r, Reason.STORED, "writing a record");
  }

  async delete(names: readonly string[], why: string): Promise<void> {
    for (let i = 0; i < names.length; i += DELETE_BATCH) {
      const batch = names.slice(i, i + DELETE_BATCH);
      const r = await this.handle.client.deleteNamespaceObjects(
        { namespace: this.namespace, names: batch, why },
        { timeoutMs: CALL_MS },
      );
      check(r, Reason.DELETED, "deleting");
    }
  }

  close(): void {
    this.handle.close();
  }
}
