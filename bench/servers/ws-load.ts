/**
 * T8's load: `SOCKETS` WebSockets to `URL` (with `Host` when given), each ping-ponging a small text
 * message with the echo origin for `SECONDS`; prints `RESULT {"messages":N,"seconds":S}` (echoes
 * received per socket, summed). Arguments: url sockets seconds [host].
 */
const [url, socketsText, secondsText, host] = Bun.argv.slice(2);
const sockets = Number(socketsText);
const seconds = Number(secondsText);
const MESSAGE = 'x'.repeat(32);
let counting = false;
let messages = 0;
const open: WebSocket[] = [];
await Promise.all(
  Array.from({ length: sockets }, () => {
    const ws = new WebSocket(url!, (host ? { headers: { host } } : {}) as never);
    open.push(ws);
    ws.addEventListener('message', () => {
      if (counting) messages++;
      ws.send(MESSAGE);
    });
    return new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      ws.addEventListener('close', (event) => reject(new Error(`socket closed before opening: ${event.code}`)));
    });
  }),
);
for (const ws of open) ws.send(MESSAGE);
await Bun.sleep(500); // warm-up: every socket in its loop
counting = true;
const started = performance.now();
await Bun.sleep(seconds * 1000);
counting = false;
const elapsed = (performance.now() - started) / 1000;
process.stdout.write(`RESULT ${JSON.stringify({ messages, seconds: elapsed })}\n`);
for (const ws of open) ws.close();
process.exit(0);

export {};
