/**
 * Cache validity for rows read from SQLite: a generation number that moves whenever the database may
 * have changed under a cache. Hot paths (the credential checks) keep what they read until it moves.
 */
import type { Database, Statement } from 'bun:sqlite';

/**
 * Commits by another process (the operator CLI) are looked for at most this often. Each look takes the
 * WAL read lock (two fcntl calls, ~3 µs, as much as the lookup it would save), so under load one look
 * serves every request of the same millisecond. A process that commits, closes the database and exits
 * takes longer than this, so its change is in force for every request sent after it returns.
 */
export const EXTERNAL_CHECK_INTERVAL_MS = 1;

/**
 * The generation of one connection's view of the database.
 *
 * Writes through this connection are seen at once: `total_changes()` counts every row this connection
 * has inserted, updated or deleted (a cascade starts from a counted row), and reading it takes no lock.
 * Commits by other connections move `PRAGMA data_version`, which is read at most once per
 * EXTERNAL_CHECK_INTERVAL_MS. Schema changes are not watched: the server never makes any while running.
 */
export class ChangeWatch {
  private readonly totalChanges: Statement<{ n: number }, []>;
  private readonly dataVersion: Statement<{ data_version: number }, []>;
  private lastTotal: number;
  private lastVersion: number;
  private lastExternalCheckMs: number;
  private current = 0;

  private constructor(
    sqlite: Database,
    private readonly nowMs: () => number,
  ) {
    this.totalChanges = sqlite.prepare<{ n: number }, []>('SELECT total_changes() AS n');
    this.dataVersion = sqlite.prepare<{ data_version: number }, []>('PRAGMA data_version');
    this.lastTotal = this.readTotal();
    this.lastVersion = this.readVersion();
    this.lastExternalCheckMs = nowMs();
  }

  private static readonly byConnection = new WeakMap<Database, ChangeWatch>();

  /** The one watch of `sqlite`, shared by every cache on that connection. `nowMs` is for tests. */
  static of(sqlite: Database, nowMs: () => number = () => performance.now()): ChangeWatch {
    let watch = ChangeWatch.byConnection.get(sqlite);
    if (watch === undefined) {
      watch = new ChangeWatch(sqlite, nowMs);
      ChangeWatch.byConnection.set(sqlite, watch);
    }
    return watch;
  }

  private readTotal(): number {
    return this.totalChanges.get()!.n;
  }

  private readVersion(): number {
    return this.dataVersion.get()!.data_version;
  }

  /** The current generation: a cache filled at another generation must be dropped. */
  generation(): number {
    const total = this.readTotal();
    if (total !== this.lastTotal) {
      this.lastTotal = total;
      this.current++;
    }
    const now = this.nowMs();
    if (now - this.lastExternalCheckMs >= EXTERNAL_CHECK_INTERVAL_MS) {
      this.lastExternalCheckMs = now;
      const version = this.readVersion();
      if (version !== this.lastVersion) {
        this.lastVersion = version;
        this.current++;
      }
    }
    return this.current;
  }

  /**
   * Runs `write`, a write whose effect the caller has put into its own cache already (the
   * last_used_at of a key), without moving the generation, so other caches are not dropped for it.
   * Only when nothing changed since the caller read generation `seen`; otherwise it moves as usual.
   */
  ownWrite<T>(seen: number, write: () => T): T {
    const before = this.generation();
    const result = write();
    if (before === seen) this.lastTotal = this.readTotal();
    return result;
  }
}

/**
 * A bounded map that empties itself whenever the watch's generation moves. Holds only positive
 * answers: what is absent is always read again from the database.
 */
export class GenerationCache<K, V> {
  private readonly entries = new Map<K, V>();
  private generation = -1;

  constructor(
    private readonly watch: ChangeWatch,
    private readonly maxEntries: number,
  ) {}

  /** The generation now; pass it to `set` and to ChangeWatch.ownWrite. Drops every entry if it moved. */
  sync(): number {
    const generation = this.watch.generation();
    if (generation !== this.generation) {
      this.entries.clear();
      this.generation = generation;
    }
    return generation;
  }

  /** The entry for `key`, valid as of the last `sync()`. */
  get(key: K): V | undefined {
    return this.entries.get(key);
  }

  /** Remembers `value`; at the cap the whole map is dropped first (refilled by the next requests). */
  set(key: K, value: V): void {
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    this.entries.set(key, value);
  }

  /** Entries held; for tests. */
  get size(): number {
    return this.entries.size;
  }
}
