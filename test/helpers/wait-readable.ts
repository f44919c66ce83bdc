// test/helpers/wait-readable.ts: waits until an fd (a fanotify group, a socket) is readable,
// through the addon's own poller on the main loop.
//
// Owns: one poller for the duration of the wait (closed either way). Holds no other fds.
import { FdPoller } from "../../native/index.js";

export function waitReadable(fd: number, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const poller = new FdPoller(fd, () => {
      clearTimeout(timer);
      poller.close();
      resolve();
    });
    const timer = setTimeout(() => {
      poller.close();
      reject(new Error(`fd ${fd} not readable within ${timeoutMs} ms`));
    }, timeoutMs);
    poller.start();
  });
}
