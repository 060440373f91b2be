/** Shared pieces of the client's tests: an in-process client against the fake server, and a recording reporter. */
import type { ClientState, ReadyInfo, Reporter, RequestLogEntry } from '../../src/client/events.ts';
import { parseTarget } from '../../src/client/target.ts';
import { TunnelClient, type ClientOutcome, type TunnelClientOptions } from '../../src/client/tunnel-client.ts';
import type { FakeTunnelServer } from './fake-server.ts';

/** A reporter that keeps everything, with waits on what arrives. */
export class RecordingReporter implements Reporter {
  readonly states: { state: ClientState; detail: string | undefined }[] = [];
  readonly readies: ReadyInfo[] = [];
  readonly requests: RequestLogEntry[] = [];
  private waiters = new Set<() => boolean>();

  state(state: ClientState, detail?: string): void {
    this.states.push({ state, detail });
    this.notify();
  }
  ready(info: ReadyInfo): void {
    this.readies.push(info);
    this.notify();
  }
  request(entry: RequestLogEntry): void {
    this.requests.push(entry);
    this.notify();
  }
  close(): void {}

  /** Settles once `check` holds. */
  until(check: () => boolean): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.add(() => {
        if (!check()) return false;
        resolve();
        return true;
      });
    });
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) if (waiter()) this.waiters.delete(waiter);
  }
}

/** A client started in this process, and how to stop it. */
export interface RunningClient {
  client: TunnelClient;
  reporter: RecordingReporter;
  outcome: Promise<ClientOutcome>;
  /** Stops the client and waits for run() to settle. */
  stop(): Promise<ClientOutcome>;
}

/** Starts a TunnelClient against the fake server, forwarding to `localPort` on 127.0.0.1. */
export function startClient(fake: FakeTunnelServer, localPort: number, options: Partial<TunnelClientOptions> = {}): RunningClient {
  const reporter = new RecordingReporter();
  const client = new TunnelClient({
    serverUrl: fake.url,
    apiKey: 'exp_k1_test_key',
    clientName: 'expose/test',
    target: parseTarget(`127.0.0.1:${localPort}`),
    subdomain: null,
    reporter,
    backoffBaseMs: 20,
    backoffMaxMs: 100,
    ...options,
  });
  const outcome = client.run();
  return {
    client,
    reporter,
    outcome,
    stop: () => {
      client.stop();
      return outcome;
    },
  };
}

/** A port nothing listens on: a server is started on port 0 and stopped again. */
export function closedPort(): number {
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('') });
  const port = server.port!;
  server.stop(true);
  return port;
}

/** `n` bytes of a repeating, position-dependent pattern: a reordered or lost piece shows. */
export function patternBytes(n: number, seed = 7): Uint8Array {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = (i * 31 + seed + (i >> 16)) & 0xff;
  return bytes;
}
