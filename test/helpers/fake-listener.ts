// Fakes of the listener's collaborators, for unit tests of the dispatcher and admin-ops that
// run without root, without fanotify and without a recall service: a source that records its
// answers and ignore marks, an fd channel that records what it was handed, a recall client
// that answers from a script, writable views that reopen the event fd read-write through
// /proc/self/fd, and a stub-state xattr kept in memory per inode (trusted.* xattrs need root).
// Every fake keys files by inode ("dev:ino"), since fd numbers are reused once closed.
// fakeListener wires the real parts (stub store, content check, fd requests, recall runner,
// dispatcher, admin-ops) to these fakes as listener/main.ts wires them to the real ones.
import { openSync } from "node:fs";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { pino } from "pino";
import type { Logger } from "pino";
import * as native from "../../native/index.js";
import type { FdStat } from "../../native/index.js";
import {
  ArchiveResponseSchema,
  RecallResponseSchema,
  Reason,
  Verdict,
  VerifyResponseSchema,
  WriteRecordRequestSchema,
  WriteRecordResponseSchema,
} from "../../proto/index.js";
import type {
  ArchiveRequestSchema,
  ArchiveResponse,
  RecallRequestSchema,
  RecallResponse,
  VerifyRequestSchema,
  VerifyResponse,
  WriteRecordRequest,
  WriteRecordResponse,
} from "../../proto/index.js";
import { AdminOps } from "../../listener/admin-ops.js";
import type { AccessKind, AccessorInfo } from "../../listener/classify-access.js";
import { ContentCheck } from "../../listener/content-check.js";
import { Dispatcher } from "../../listener/dispatcher.js";
import type { WatchMode } from "../../listener/fanotify-source.js";
import { FdRequests } from "../../listener/recall-client.js";
import type { RpcResult } from "../../listener/recall-client.js";
import { RecallRunner } from "../../listener/recall-runner.js";
import type { RecallRule } from "../../listener/recall-rules.js";
import { decodeStubState } from "../../listener/stub-state.js";
import type { StubState } from "../../listener/stub-state.js";
import { StubStore } from "../../listener/stub-store.js";
import type { StubXattr } from "../../listener/stub-store.js";

export const silentLog: Logger = pino({ level: "silent" });

export function keyOf(fd: number): string {
  const st = native.fstat(fd);
  return `${st.dev}:${st.ino}`;
}

export interface Answer {
  readonly fd: number;
  readonly verdict: "allow" | "deny";
  readonly errno: number;
}

/** A FanotifySource that records respond/ignore/unignore; `answered` waits for one answer. */
export class FakeSource {
  readonly answers: Answer[] = [];
  readonly ignored: Array<{ key: string; mode: WatchMode }> = [];
  readonly unignored: Array<{ key: string; mode: WatchMode }> = [];
  private waiters: Array<{ fd: number; resolve: (a: Answer) => void }> = [];

  respond(fd: number, verdict: "allow" | "deny", errno: number): void {
    const a = { fd, verdict, errno };
    this.answers.push(a);
    const w = this.waiters.filter((x) => x.fd === fd);
    this.waiters = this.waiters.filter((x) => x.fd !== fd);
    for (const x of w) x.resolve(a);
  }

  ignore(fd: number, mode: WatchMode): void {
    this.ignored.push({ key: keyOf(fd), mode });
  }

  unignore(fd: number, mode: WatchMode): void {
    this.unignored.push({ key: keyOf(fd), mode });
  }

  /** The answer for event fd `fd` (now, or when it comes). */
  answered(fd: number): Promise<Answer> {
    const had = this.answers.find((a) => a.fd === fd);
    if (had) return Promise.resolve(had);
    return new Promise((resolve) => this.waiters.push({ fd, resolve }));
  }
}

/** An FdChannel that records (requestId, inode) of each send; throws while `failing`. */
export class FakeChannel {
  readonly sent: Array<{ requestId: bigint; key: string }> = [];
  failing = false;

  send(requestId: bigint, fd: number): void {
    if (this.failing) throw new Error("fake fd channel: not connected");
    this.sent.push({ requestId, key: keyOf(fd) });
  }
}

type RecallRequest = MessageInitShape<typeof RecallRequestSchema>;
type ArchiveRequest = MessageInitShape<typeof ArchiveRequestSchema>;
type VerifyRequest = MessageInitShape<typeof VerifyRequestSchema>;
type Script<Req, Res> = (req: Req, call: number) => RpcResult<Res> | Promise<RpcResult<Res>>;

const unscripted = (): RpcResult<never> => ({ ok: false, reason: "protocol-error", message: "not scripted" });

/** A RecallClient whose replies come from scripts; every request is recorded. */
export class FakeRecallClient {
  readonly recalls: Array<{ req: RecallRequest; timeoutMs: number }> = [];
  readonly archives: ArchiveRequest[] = [];
  readonly verifies: VerifyRequest[] = [];
  onRecall: Script<RecallRequest, RecallResponse> = unscripted;
  onArchive: Script<ArchiveRequest, ArchiveResponse> = unscripted;
  onVerify: Script<VerifyRequest, VerifyResponse> = unscripted;

  recall(req: RecallRequest, timeoutMs: number): Promise<RpcResult<RecallResponse>> {
    this.recalls.push({ req, timeoutMs });
    return Promise.resolve(this.onRecall(req, this.recalls.length - 1));
  }

  archive(req: ArchiveRequest): Promise<RpcResult<ArchiveResponse>> {
    this.archives.push(req);
    return Promise.resolve(this.onArchive(req, this.archives.length - 1));
  }

  /** Records written (release records the file's path in its namespace). */
  readonly records: WriteRecordRequest[] = [];

  writeRecord(req: MessageInitShape<typeof WriteRecordRequestSchema>): Promise<RpcResult<WriteRecordResponse>> {
    this.records.push(create(WriteRecordRequestSchema, req));
    return Promise.resolve({ ok: true, value: create(WriteRecordResponseSchema, { reason: Reason.STORED }) });
  }

  verify(req: VerifyRequest): Promise<RpcResult<VerifyResponse>> {
    this.verifies.push(req);
    return Promise.resolve(this.onVerify(req, this.verifies.length - 1));
  }
}

export function recallReply(
  requestId: bigint | undefined,
  init: { verdict?: Verdict; reason?: Reason; fullyPopulated?: boolean; manifest?: Uint8Array } = {},
): RpcResult<RecallResponse> {
  const value = create(RecallResponseSchema, {
    requestId: requestId ?? 0n,
    verdict: init.verdict ?? Verdict.ALLOW,
    reason: init.reason ?? Reason.RECALLED,
    fullyPopulated: init.fullyPopulated ?? false,
    manifest: init.manifest ?? new Uint8Array(),
  });
  return { ok: true, value };
}

export function archiveReply(init: MessageInitShape<typeof ArchiveResponseSchema>): RpcResult<ArchiveResponse> {
  return { ok: true, value: create(ArchiveResponseSchema, init) };
}

export function verifyReply(init: MessageInitShape<typeof VerifyResponseSchema>): RpcResult<VerifyResponse> {
  return { ok: true, value: create(VerifyResponseSchema, init) };
}

/** WritableViews that reopen the inode read-write through /proc/self/fd (the caller closes it). */
export class FakeViews {
  reopens = 0;
  failing = false;

  reopen(fd: number, _st: FdStat, access: "read" | "write"): number {
    if (this.failing) throw new Error("fake views: no view");
    this.reopens++;
    return openSync(`/proc/self/fd/${fd}`, access === "write" ? "r+" : "r");
  }
}

/** The stub-state xattr, in memory per inode; every write is recorded (decoded). */
export class FakeStubXattr implements StubXattr {
  private readonly values = new Map<string, Buffer>();
  readonly writes: Array<{ key: string; state: StubState }> = [];

  get(fd: number): Buffer | null {
    return this.values.get(keyOf(fd)) ?? null;
  }

  set(fd: number, value: Uint8Array): void {
    const key = keyOf(fd);
    this.values.set(key, Buffer.from(value));
    this.writes.push({ key, state: decodeStubState(value) });
  }

  /** Sets the state of the file behind `fd` without recording a write (test setup). */
  preset(fd: number, value: Uint8Array): void {
    this.values.set(keyOf(fd), Buffer.from(value));
  }

  stateOf(fd: number): StubState | null {
    const raw = this.values.get(keyOf(fd));
    return raw ? decodeStubState(raw) : null;
  }
}

export interface FakeListenerOptions {
  readonly recallTimeoutMs?: number;
  readonly maxRecalls?: number;
  readonly maxHeld?: number;
  readonly modeOf?: (dev: number) => WatchMode;
  readonly classify?: (tid: number) => AccessKind;
  readonly rules?: readonly RecallRule[];
  readonly lowWaitMs?: number;
  readonly describe?: (pid: number) => AccessorInfo;
}

/** The listener's real parts on the fakes above, wired as listener/main.ts wires them. */
export function fakeListener(opts: FakeListenerOptions = {}) {
  const source = new FakeSource();
  const channel = new FakeChannel();
  const recall = new FakeRecallClient();
  const views = new FakeViews();
  const xattr = new FakeStubXattr();
  const log = silentLog;
  const stubs = new StubStore(log, xattr);
  const content = new ContentCheck();
  const requests = new FdRequests(channel, log);
  const modeOf = opts.modeOf ?? (() => "whole");
  const runner = new RecallRunner({
    source,
    requests,
    recall,
    log,
    views,
    stubs,
    content,
    modeOf,
    recallTimeoutMs: opts.recallTimeoutMs ?? 10_000,
    ...(opts.classify ? { classify: opts.classify } : {}),
  });
  const dispatcher = new Dispatcher({
    source,
    runner,
    stubs,
    log,
    modeOf,
    maxRecalls: opts.maxRecalls ?? 8,
    callerShare: 1,
    maxHeld: opts.maxHeld ?? 64,
    rules: opts.rules ?? [],
    lowWaitMs: opts.lowWaitMs ?? 10_000,
    ...(opts.describe ? { describe: opts.describe } : {}),
  });
  const ops = new AdminOps({ dispatcher, runner, stubs, content, requests, source, recall, log, views, modeOf });
  return { source, channel, recall, views, xattr, stubs, dispatcher, ops };
}
