// systemd-notify: the listener's side of systemd's notify protocol and file descriptor store,
// the systemd counterpart of the group-fd holder (group-handoff.ts). Under a unit with
// Type=notify and FileDescriptorStoreMax>=1 the listener deposits a copy of its fanotify group
// fd with systemd (FDSTORE=1); when the listener crashes, systemd still holds the group, so
// held readers stay held instead of being allowed onto a stub's zeros, and the restarted
// listener gets the group back as a LISTEN_FDS fd and answers them. A deliberate stop removes
// the fd from the store (FDSTOREREMOVE=1) after every held event was answered.
//
// Owns: reading and clearing $NOTIFY_SOCKET and $LISTEN_*; sending notify datagrams.
// Fds: the group fd returned by takeFromFdStore belongs to the caller; sends dup nothing.
// Must not: open any path (it only reads the /proc/self/fd link of an fd it was given).
import { readlinkSync } from "node:fs";
import * as native from "../native/index.js";

/** The name the group fd has in systemd's store (FDNAME=, LISTEN_FDNAMES). */
export const GROUP_FD_NAME = "fanotify-group";
/** sd_listen_fds(3): passed fds start at 3. */
const SD_LISTEN_FDS_START = 3;

export class SystemdNotify {
  /** The notify socket, or null when not started by systemd with Type=notify. */
  readonly socket: string | null;

  constructor(env: NodeJS.ProcessEnv = process.env) {
    this.socket = env.NOTIFY_SOCKET || null;
    // Not for children: a child that notified would speak for this service.
    delete env.NOTIFY_SOCKET;
  }

  /** Sends one notify message (KEY=VALUE lines); false without a notify socket. */
  send(fields: Record<string, string>, fds: number[] = []): boolean {
    if (this.socket === null) return false;
    const text = Object.entries(fields)
      .map(([k, v]) => `${k}=${v}`)
      .join("\n");
    native.datagramSendTo(this.socket, Buffer.from(`${text}\n`), fds);
    return true;
  }

  /** Deposits a copy of the group fd in systemd's fd store. */
  storeGroup(groupFd: number): boolean {
    return this.send({ FDSTORE: "1", FDNAME: GROUP_FD_NAME }, [groupFd]);
  }

  /** Removes the group fd from the store (a deliberate full stop). */
  removeGroup(): boolean {
    return this.send({ FDSTOREREMOVE: "1", FDNAME: GROUP_FD_NAME });
  }
}

/**
 * The fanotify group a crashed predecessor left in systemd's fd store, or null. Only an fd
 * named GROUP_FD_NAME that really is a fanotify group is taken; every other passed fd is
 * closed. The LISTEN_* variables are cleared either way.
 */
export function takeFromFdStore(env: NodeJS.ProcessEnv = process.env): number | null {
  const pid = Number(env.LISTEN_PID);
  const count = Number(env.LISTEN_FDS);
  const names = (env.LISTEN_FDNAMES ?? "").split(":");
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (pid !== process.pid || !Number.isInteger(count) || count < 1) return null;
  let group: number | null = null;
  for (let i = 0; i < count; i++) {
    const fd = SD_LISTEN_FDS_START + i;
    if (group === null && names[i] === GROUP_FD_NAME && isFanotifyGroup(fd)) group = fd;
    else native.close(fd);
  }
  return group;
}

function isFanotifyGroup(fd: number): boolean {
  try {
    return readlinkSync(`/proc/self/fd/${fd}`) === "anon_inode:[fanotify]";
  } catch {
    return false;
  }
}
