/** Byte helpers shared by the archive reader, the artifact hub and the load tool. */

/** The chunks as one buffer (the chunk itself when there is one); `length` when the caller knows it. */
export function concatBytes(
  chunks: Uint8Array[],
  length = chunks.reduce((n, c) => n + c.byteLength, 0),
): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(length);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}
