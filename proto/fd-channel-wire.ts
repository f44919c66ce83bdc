// fd-channel-wire: the fixed 16-byte header of the SOCK_SEQPACKET fd channel between the
// listener and the recall service. Each message carries exactly one fd (SCM_RIGHTS) and
// this header, whose requestId matches the gRPC request that uses the fd.
//
// Layout (little endian): u16 magic 0x5246 "FR" | u8 version 1 | u8 type | u32 reserved 0 | u64 requestId.
// Owns: encoding and strict decoding. Must not own: sockets or fds.

export const FD_CHANNEL_HEADER_BYTES = 16;
export const FD_CHANNEL_MAGIC = 0x5246;
export const FD_CHANNEL_VERSION = 1;

export const FdMessageType = {
  /** The fd of a file the next RPC with this requestId works on. */
  FD_OFFER: 1,
} as const;
export type FdMessageType = (typeof FdMessageType)[keyof typeof FdMessageType];

export interface FdHeader {
  readonly type: FdMessageType;
  readonly requestId: bigint;
}

export function encodeFdHeader(h: FdHeader): Buffer {
  const b = Buffer.alloc(FD_CHANNEL_HEADER_BYTES);
  b.writeUInt16LE(FD_CHANNEL_MAGIC, 0);
  b.writeUInt8(FD_CHANNEL_VERSION, 2);
  b.writeUInt8(h.type, 3);
  b.writeUInt32LE(0, 4);
  b.writeBigUInt64LE(h.requestId, 8);
  return b;
}

/** Decodes a header; returns an error string for anything that is not exactly a valid header. */
export function decodeFdHeader(data: Uint8Array): FdHeader | string {
  if (data.length !== FD_CHANNEL_HEADER_BYTES) return `bad length ${data.length}`;
  const b = Buffer.from(data.buffer, data.byteOffset, data.length);
  if (b.readUInt16LE(0) !== FD_CHANNEL_MAGIC) return "bad magic";
  if (b.readUInt8(2) !== FD_CHANNEL_VERSION) return `unsupported version ${b.readUInt8(2)}`;
  const type = b.readUInt8(3);
  if (type !== FdMessageType.FD_OFFER) return `unknown type ${type}`;
  if (b.readUInt32LE(4) !== 0) return "reserved bits set";
  const requestId = b.readBigUInt64LE(8);
  if (requestId === 0n) return "request id 0";
  return { type, requestId };
}
