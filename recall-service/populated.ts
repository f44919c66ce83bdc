// populated: which byte ranges of a file already hold data, read with SEEK_DATA/SEEK_HOLE
// on an fd (no pre-content event is raised by lseek). A recalled chunk is written whole,
// so a chunk counts as populated only when no hole starts inside it.
//
// Owns: nothing; pure queries on an fd the caller holds.
import * as native from "../native/index.js";

/** True when [offset, offset + length) holds no hole. */
export function isPopulated(fd: number, offset: number, length: number): boolean {
  if (length === 0) return true;
  const hole = native.seekHole(fd, offset);
  return hole === -1 || hole >= offset + length;
}

/** Number of bytes below `size` that hold data. */
export function populatedBytes(fd: number, size: number): number {
  let total = 0;
  let pos = 0;
  while (pos < size) {
    const data = native.seekData(fd, pos);
    if (data === -1 || data >= size) break;
    const hole = native.seekHole(fd, data);
    const end = hole === -1 ? size : Math.min(hole, size);
    total += end - data;
    pos = end;
  }
  return total;
}
