// fail-closed: answers a fanotify group's events while no listener serves it, so that nobody
// waits forever and no stub reads as zeros when the listener cannot run (crash loop, its
// supervisor killed, a service manager that gave up). Every event a dead listener had read
// but not answered is answered EIO first (by fd number, as a taking-over listener does);
// then each new event is answered at once: EIO for a file whose stub state says its data is
// (partly) in the store only, or whose state cannot be read; ALLOW for everything else.
// Nothing is recalled here, nothing is written, nothing is opened by path.
//
// Owns: a poller on the group fd while it runs, and each event fd from read to close.
// Must not own: the group fd itself (the holder's).
import * as native from "../native/index.js";
import { readBatches } from "../listener/fanotify-source.js";
import { answerStale } from "../listener/group-handoff.js";
import { STUB_XATTR, decodeStubState, needsRecall } from "../listener/stub-state.js";

const EIO = 5;
const FAN_ALLOW = native.FAN.FAN_ALLOW;
export interface FailClosedLog {
  warn(msg: string): void;
}

/** Whether an access to the file behind `eventFd` must fail: a stub, or unreadable state. */
export function mustFail(eventFd: number): boolean {
  try {
    const st = native.fstat(eventFd);
    if ((st.mode & 0o170000) !== 0o100000) return false;
    const raw = native.fgetxattr(eventFd, STUB_XATTR);
    return raw !== null && needsRecall(decodeStubState(raw).state);
  } catch {
    return true;
  }
}

export class FailClosedAnswerer {
  private poller: native.FdPoller | null = null;
  /** Accesses failed (stubs) and allowed since start, for the log. */
  failed = 0;
  allowed = 0;

  constructor(
    private readonly groupFd: number,
    private readonly log: FailClosedLog,
  ) {}

  get running(): boolean {
    return this.poller !== null;
  }

  start(): void {
    if (this.poller) return;
    const stale = answerStale(this.groupFd, EIO);
    this.log.warn(
      `no listener: answering the group fail-closed (stubs EIO, other files allowed); ${stale} stale events answered EIO`,
    );
    this.poller = new native.FdPoller(this.groupFd, () => this.drain());
    this.poller.start();
    this.drain();
  }

  stop(): void {
    this.poller?.close();
    this.poller = null;
  }

  private drain(): void {
    const batches = readBatches(this.groupFd, 16, (err) => this.log.warn(`reading the group failed: ${String(err)}`));
    for (const events of batches) {
      for (const ev of events) {
        if (ev.fd < 0) continue;
        const fail = mustFail(ev.fd);
        try {
          native.fanotifyRespond(this.groupFd, ev.fd, fail ? native.denyErrno(EIO) : FAN_ALLOW);
        } catch (err: unknown) {
          this.log.warn(`answering an event failed: ${String(err)}`);
        }
        native.close(ev.fd);
        if (fail) this.failed++;
        else this.allowed++;
      }
    }
  }
}
