// populated: which byte ranges of a file already hold data, read with SEEK_DATA/SEEK_HOLE
// on an fd (no pre-content event is raised by lseek). Recalls write whole verification
// blocks, so a block counts as populated only when no hole starts inside it, and a block
// with a hole was never written by anyone (a user's write recalls the whole file first).
//
// Owns: nothing; pure queries on an fd the caller holds.
import * as native from "../native/index.js";

/** True when [offset, offset + length) holds no hole. */
export function isPopulated(fd: number, offset: number, length: number): boolean {
  if (length === 0) return true;
  const hole = native.seekHole(fd, offset);
  return hole === -1 || hole >= offset + length;
}

/**
 * The runs of `align`-sized blocks (aligned to multiples of `align` from 0) within
 * [start, end) that contain a hole, as [from, to) pairs clipped to [start, end), in order.
 * `start` must be a multiple of `align`.
 */
export function holeRuns(fd: number, start: number, end: number, align: number): Array<[number, number]> {
  const runs: Array<[number, number]> = [];
  for (let pos = start; pos < end;) {
    const hole = native.seekHole(fd, pos);
    if (hole === -1 || hole >= end) break;
    const data = native.seekData(fd, hole);
    const from = Math.floor(hole / align) * align;
    const to = data === -1 || data >= end ? end : Math.min(end, Math.ceil(data / align) * align);
    const last = runs[runs.length - 1];
    if (last && last[1] >= from) last[1] = to;
    else runs.push([Math.max(start, from), to]);
    pos = to;
  }
  return runs;
}
