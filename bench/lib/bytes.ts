/** Bulk bodies for the transfer benchmarks. */

/**
 * A body of exactly `total` bytes made of `chunk` over and over (the last piece cut short), produced
 * only as fast as it is read (`highWaterMark` 0), so a 1 GiB transfer never sits in memory.
 */
export function repeatedBody(chunk: Uint8Array, total: number): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        const left = total - sent;
        const piece = left < chunk.byteLength ? chunk.subarray(0, left) : chunk;
        sent += piece.byteLength;
        controller.enqueue(piece);
        if (sent >= total) controller.close();
      },
    },
    { highWaterMark: 0 },
  );
}
