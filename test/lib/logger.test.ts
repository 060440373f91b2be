/** The stdout logger batches lines per event-loop turn; none may be lost or reordered, exit included. */
import { describe, expect, it } from 'bun:test';
import { join } from 'node:path';
import { createLogger, createMemoryLogger } from '../../src/lib/logger.ts';

const LOGGER = join(import.meta.dir, '..', '..', 'src', 'lib', 'logger.ts');

/** Runs `body` in a fresh Bun process with `createLogger` imported; returns its stdout lines, parsed. */
function runScript(body: string): Array<Record<string, unknown>> {
  const script = `import { createLogger, flushLogs } from ${JSON.stringify(LOGGER)};\n${body}`;
  const result = Bun.spawnSync([process.execPath, '-e', script], { stdout: 'pipe', stderr: 'pipe' });
  expect(result.stderr.toString()).toBe('');
  return result.stdout.toString().trimEnd().split('\n').filter((line) => line !== '').map((line) => JSON.parse(line));
}

describe('createLogger (stdout)', () => {
  it('writes every line, in order, when the process ends by itself', () => {
    const lines = runScript(`const log = createLogger('info'); for (let i = 0; i < 500; i++) log.info('line', { i });`);
    expect(lines.map((line) => line.i)).toEqual(Array.from({ length: 500 }, (_, i) => i));
  });

  it('writes the lines of the last turn before process.exit()', () => {
    const lines = runScript(`const log = createLogger('info'); log.info('first'); log.error('last words', { code: 3 }); process.exit(0);`);
    expect(lines.map((line) => line.msg)).toEqual(['first', 'last words']);
    expect(lines[1]).toMatchObject({ level: 'error', code: 3 });
  });

  it('keeps lines from different turns in order, and flushLogs writes at once', () => {
    const lines = runScript(`const log = createLogger('debug');
log.debug('a'); setImmediate(() => { log.info('c'); flushLogs(); process.stdout.write(JSON.stringify({ msg: 'd' }) + '\\n'); });
log.warn('b');`);
    expect(lines.map((line) => line.msg)).toEqual(['a', 'b', 'c', 'd']);
  });

  it('waits for a slow reader of a non-blocking pipe: every line arrives, in order', async () => {
    // A FileSink on stdout makes the pipe non-blocking, as some parents do: a full pipe then answers
    // EAGAIN, which fs.writeSync threw (and the lines went to an unbounded stream queue).
    const script = `import { createLogger } from ${JSON.stringify(LOGGER)};
Bun.stdout.writer();
const log = createLogger('info');
const pad = 'x'.repeat(200);
for (let turn = 0; turn < 20; turn++) { for (let i = 0; i < 1000; i++) log.info('l', { n: turn * 1000 + i, pad }); await new Promise((r) => setImmediate(r)); }`;
    const child = Bun.spawn([process.execPath, '-e', script], { stdout: 'pipe', stderr: 'pipe' });
    await Bun.sleep(500);
    const [out, err, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
    expect({ code, err }).toEqual({ code: 0, err: '' });
    const numbers = out.trimEnd().split('\n').map((line) => (JSON.parse(line) as { n: number }).n);
    expect(numbers).toEqual(Array.from({ length: 20_000 }, (_, i) => i));
  });

  it('goes on, silently, once its reader is gone (EPIPE)', () => {
    const script = `import { createLogger } from ${JSON.stringify(LOGGER)};
const log = createLogger('info');
for (let turn = 0; turn < 10; turn++) { log.info('l', { turn }); await Bun.sleep(20); }
process.stderr.write('still here');`;
    const result = Bun.spawnSync(['bash', '-c', `"$0" -e "$1" | head -1 >/dev/null; exit "\${PIPESTATUS[0]}"`, process.execPath, script], { stderr: 'pipe' });
    expect({ code: result.exitCode, err: result.stderr.toString() }).toEqual({ code: 0, err: 'still here' });
  });

  it('drops lines below the level, and says so through enabled()', () => {
    const log = createLogger('warn', () => {});
    expect([log.enabled('debug'), log.enabled('info'), log.enabled('warn'), log.enabled('error')]).toEqual([false, false, true, true]);
    const lines = runScript(`const log = createLogger('warn'); log.debug('no'); log.info('no'); log.warn('yes');`);
    expect(lines.map((line) => line.msg)).toEqual(['yes']);
  });
});

describe('createMemoryLogger', () => {
  it('keeps each line at once, synchronously', () => {
    const log = createMemoryLogger('info');
    log.info('now', { n: 1 });
    expect(log.lines).toHaveLength(1);
    expect(JSON.parse(log.lines[0]!)).toMatchObject({ level: 'info', msg: 'now', n: 1 });
  });
});
