// namespace-handler: serves the namespace RPCs (WriteRecord, ListNamespace,
// GetNamespaceObject, PutNamespaceObject, DeleteNamespaceObjects) for the root side's
// reconcile, rebuild and undelete, which hold no S3 credentials. Every name is confined to
// PREFIX/NAMESPACE/ of the configured bucket (proto/namespace-format.ts checks the names):
// a caller can never list, read, write or delete another namespace's objects or anything
// outside the prefix. Data objects are never read here (recalls do that, verified), records
// and snapshots are written only under their own areas, and each deletion is an audit record.
//
// Owns: nothing long-lived. Must not own: what a snapshot means or which objects may go (the
// root CLI decides; it also re-checks everything it reads). Holds no fds.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Logger } from "pino";
import type {
  DeleteNamespaceObjectsRequest,
  DeleteNamespaceObjectsResponseSchema,
  GetNamespaceObjectRequest,
  GetNamespaceObjectResponseSchema,
  ListNamespaceRequest,
  ListNamespaceResponseSchema,
  PutNamespaceObjectRequest,
  PutNamespaceObjectResponseSchema,
  WriteRecordRequest,
  WriteRecordResponseSchema,
} from "../proto/index.js";
import { reasonToProto } from "../proto/index.js";
import type { Reason } from "../proto/index.js";
import {
  MAX_PART_BYTES,
  decodeFileRecord,
  isNamespaceName,
  isNamespaceObjectName,
  recordName,
} from "../proto/namespace-format.js";
import { RecallError, errorMessage, storeErrorReason } from "./errors.js";
import type { ObjectStore } from "./object-store.js";

export interface NamespaceHandlerOptions {
  readonly store: ObjectStore;
  readonly bucket: string;
  readonly keyPrefix: string;
  readonly log: Logger;
}

const AREAS = new Set(["objects", "records", "snapshots"]);
const MAX_KEYS = 1000;
const TIMEOUT_MS = 60_000;
/** A start_after: an area, then safe characters (a name, or a prefix of one such as a time). */
const START_AFTER = /^(objects|records|snapshots)\/[A-Za-z0-9._/-]{0,400}$/;

/** A namespace reply: `fn`'s, or the failure (its reason and message) when it throws. */
async function answer<T>(fn: () => Promise<T>): Promise<T | { reason: Reason; message: string }> {
  try {
    return await fn();
  } catch (err: unknown) {
    return { reason: reasonToProto(storeErrorReason(err)), message: errorMessage(err) };
  }
}

export class NamespaceHandler {
  constructor(private readonly opts: NamespaceHandlerOptions) {}

  /** PREFIX/NS/ for a valid namespace name. */
  private root(namespace: string): string {
    if (!isNamespaceName(namespace)) throw new RecallError("invalid-path", "invalid namespace name");
    return `${this.opts.keyPrefix}${namespace}/`;
  }

  private key(namespace: string, name: string, areas: readonly string[]): string {
    if (!isNamespaceObjectName(name) || !areas.includes(name.slice(0, name.indexOf("/")))) {
      throw new RecallError("invalid-path", `'${name}' is not a ${areas.join(" or ")} name`);
    }
    return this.root(namespace) + name;
  }

  async writeRecord(req: WriteRecordRequest): Promise<MessageInitShape<typeof WriteRecordResponseSchema>> {
    return answer(async () => {
      const root = this.root(req.namespace);
      const record = decodeFileRecord(req.record);
      if (record.bucket !== this.opts.bucket || !record.key.startsWith(`${root}objects/`)) {
        throw new RecallError("invalid-path", "the record names an object outside its namespace");
      }
      const name = recordName(record.key, Date.now());
      const body = Buffer.from(req.record);
      await this.opts.store.put(this.opts.bucket, root + name, body, body.length, {});
      return { reason: reasonToProto("stored"), name };
    });
  }

  async list(
    req: ListNamespaceRequest,
    signal: AbortSignal,
  ): Promise<MessageInitShape<typeof ListNamespaceResponseSchema>> {
    return answer(async () => {
      const root = this.root(req.namespace);
      if (!AREAS.has(req.area)) throw new RecallError("invalid-path", "unknown area");
      if (req.startAfter !== "" && (!START_AFTER.test(req.startAfter) || req.startAfter.includes(".."))) {
        throw new RecallError("invalid-path", "invalid start_after");
      }
      const max = req.maxKeys === 0 ? MAX_KEYS : Math.min(req.maxKeys, MAX_KEYS);
      const startAfter = req.startAfter === "" ? "" : root + req.startAfter;
      const page = await this.opts.store.list(this.opts.bucket, `${root}${req.area}/`, startAfter, max, signal);
      return {
        objects: page.objects.map((o) => ({
          name: o.key.slice(root.length),
          size: BigInt(o.size),
          lastModifiedUnixMs: BigInt(o.lastModifiedMs),
        })),
        truncated: page.truncated,
        reason: reasonToProto("stored"),
      };
    });
  }

  async get(
    req: GetNamespaceObjectRequest,
    signal: AbortSignal,
  ): Promise<MessageInitShape<typeof GetNamespaceObjectResponseSchema>> {
    return answer(async () => {
      const key = this.key(req.namespace, req.name, ["records", "snapshots"]);
      if (req.length > MAX_PART_BYTES) throw new RecallError("protocol-error", "at most 4 MiB per read");
      const loc = { bucket: this.opts.bucket, key, versionId: "" };
      const st = await this.opts.store.stat(loc, signal);
      if (st === null) throw new RecallError("object-missing", `no object ${req.name}`);
      const offset = Math.min(Number(req.offset), st.size);
      const length = Math.min(req.length, st.size - offset);
      const data = length === 0 ? Buffer.alloc(0) : await this.opts.store.getRange(loc, offset, length, signal);
      return { data, size: BigInt(st.size), reason: reasonToProto("stored") };
    });
  }

  async put(req: PutNamespaceObjectRequest): Promise<MessageInitShape<typeof PutNamespaceObjectResponseSchema>> {
    return answer(async () => {
      const key = this.key(req.namespace, req.name, ["snapshots"]);
      if (req.data.length > MAX_PART_BYTES) throw new RecallError("protocol-error", "at most 4 MiB per object");
      const body = Buffer.from(req.data);
      await this.opts.store.put(this.opts.bucket, key, body, body.length, {});
      return { reason: reasonToProto("stored") };
    });
  }

  async delete(
    req: DeleteNamespaceObjectsRequest,
  ): Promise<MessageInitShape<typeof DeleteNamespaceObjectsResponseSchema>> {
    return answer(async () => {
      if (req.names.length > MAX_KEYS) throw new RecallError("protocol-error", "at most 1000 names per call");
      const keys = req.names.map((n) => this.key(req.namespace, n, ["objects", "records", "snapshots"]));
      await this.opts.store.remove(this.opts.bucket, keys);
      const why = req.why.slice(0, 200);
      for (const key of keys) {
        this.opts.log.info(
          { audit: "delete", namespace: req.namespace, key, why, reason: "deleted" },
          "object deleted",
        );
      }
      return { deleted: keys.length, reason: reasonToProto("deleted") };
    });
  }
}

/** Deadline for one namespace call's store work. */
export function namespaceSignal(callSignal: AbortSignal): AbortSignal {
  return AbortSignal.any([callSignal, AbortSignal.timeout(TIMEOUT_MS)]);
}
