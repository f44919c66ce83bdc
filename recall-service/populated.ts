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
