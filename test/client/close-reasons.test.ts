/** When a connection ends: reconnect or stop, and the line the user reads. */
import { describe, expect, it } from 'bun:test';
import { judgeEnd } from '../../src/client/close-reasons.ts';
import type { ConnectionEnd } from '../../src/client/connection.ts';

const closed = (code: number, extra: Partial<Extract<ConnectionEnd, { kind: 'closed' }>> = {}): ConnectionEnd => ({
  kind: 'closed',
  code,
  reason: '',
  goAway: undefined,
  opened: true,
  authenticated: true,
  failure: undefined,
  ...extra,
});

describe('judgeEnd', () => {
  it('stops for good on 4001, 4003, 4010 and 4009, even after being connected', () => {
    expect(judgeEnd(closed(4001), true)).toEqual({ action: 'stop', message: 'API key revoked' });
    expect(judgeEnd(closed(4001, { authenticated: false }), true).action).toBe('stop');
    expect(judgeEnd(closed(4003), true).action).toBe('stop');
    expect(judgeEnd(closed(4010), true)).toEqual({ action: 'stop', message: 'tunnel closed by its owner' });
    expect(judgeEnd(closed(4009), true).action).toBe('stop');
    expect(judgeEnd({ kind: 'auth_failed', error: 'forbidden' }, true).action).toBe('stop');
  });

  it('reconnects after a drop, a shutdown, silence or a protocol error once it has been connected', () => {
    expect(judgeEnd(closed(1006), true)).toEqual({ action: 'reconnect', detail: 'connection lost' });
    expect(judgeEnd(closed(1001, { goAway: 'shutdown' }), true)).toEqual({ action: 'reconnect', detail: 'server shutting down' });
    expect(judgeEnd(closed(4002), true).action).toBe('reconnect');
    expect(judgeEnd({ kind: 'dead', silentMs: 45_000 }, true)).toEqual({ action: 'reconnect', detail: 'no word from the server for 45.0 s' });
    expect(judgeEnd(closed(1006, { opened: false, failure: 'Failed to connect' }), true).action).toBe('reconnect');
  });

  it('stops when the very first connection fails, so a wrong URL is reported at once', () => {
    expect(judgeEnd(closed(1006, { opened: false, failure: 'Failed to connect' }), false)).toEqual({ action: 'stop', message: 'cannot reach the server: Failed to connect' });
    expect(judgeEnd(closed(1001), false).action).toBe('stop');
  });
});
