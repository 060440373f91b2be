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

/** Whether a connection may have written since its watch last looked. */
interface WriteMark {
  dirty: boolean;
}

/** Connections opened with trackWrites, and their mark. */
const writeMarks = new WeakMap<Database, WriteMark>();

/** The row methods of a bun:sqlite statement, each an own property of the statement. */
const ROW_METHODS = ['get', 'all', 'values', 'raw', 'run'] as const;

/** Set on a statement whose executions already mark. */
const MARKED = Symbol('expose.writeMarked');

/** Makes `statement` set `mark.dirty` after every execution, once per statement. */
function markExecutions(statement: Statement, mark: WriteMark): Statement {
  const methods = statement as unknown as Record<string, (...args: unknown[]) => unknown> & { [MARKED]?: true };
  if (methods[MARKED]) return statement;
  methods[MARKED] = true;
  for (const name of ROW_METHODS) {
    const execute = methods[name];
    if (typeof execute !== 'function') continue;
    methods[name] = function (this: unknown, ...args: unknown[]) {
      try {
        return execute.apply(this, args);
      } finally {
        mark.dirty = true;
      }
    };
  }
  const iterate = methods.iterate;
  if (typeof iterate === 'function') {
    // Each step may write a row: mark after every one, not only when the iterator is made.
    const markedIterate = function* (this: unknown, ...args: unknown[]) {
      mark.dirty = true;
      for (const row of iterate.apply(this, args) as Iterable<unknown>) {
        mark.dirty = true;
        yield row;
      }
      mark.dirty = true;
    };
    methods.iterate = markedIterate;
    // `for (const row of statement)` goes through the class's own iterator, not through `iterate`.
    (statement as unknown as Record<symbol, unknown>)[Symbol.iterator] = function (this: unknown) {
      return markedIterate.call(this);
    };
  }
  return statement;
}

/**
 * Makes the watch of `sqlite` see this connection's writes without asking SQLite on every read: each
 * statement that can write, as SQLite itself judges it (`sqlite3_stmt_readonly`, bun:sqlite's
 * `readonly`), and every `run`/`exec` of SQL text marks the connection; the watch reads
 * `total_changes()` only after a mark. Reads then cost no statement at all (two per API read before).
 * Call it right after opening, before anything is prepared: a statement prepared earlier would go
 * unseen. src/db/client.ts does.
 */
export function trackWrites(sqlite: Database): void {
  if (writeMarks.has(sqlite)) return;
  const mark: WriteMark = { dirty: true };
  writeMarks.set(sqlite, mark);
  const db = sqlite as unknown as Record<string, (...args: unknown[]) => unknown>;
  for (const name of ['prepare', 'query'] as const) {
    const make = db[name]!;
    db[name] = function (this: unknown, ...args: unknown[]) {
      const statement = make.apply(this, args) as Statement;
      return statement.readonly ? statement : markExecutions(statement, mark);
    };
  }
  for (const name of ['run', 'exec'] as const) {
    const execute = db[name]!;
    db[name] = function (this: unknown, ...args: unknown[]) {
      try {
        return execute.apply(this, args);
      } finally {
        mark.dirty = true;
      }
    };
  }
}

/**
 * The generation of one connection's view of the database.
 *
 * Writes through this connection are seen at once: `total_changes()` counts every row this connection
 * has inserted, updated or deleted (a cascade starts from a counted row), and reading it takes no lock.
 * On a connection opened with trackWrites it is read only after a statement that can write ran.
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
  /** Set by trackWrites' wrappers; undefined on an untracked connection, which reads total_changes() every time. */
  private readonly writes: WriteMark | undefined;

  private constructor(
    sqlite: Database,
    private readonly nowMs: () => number,
  ) {
    this.writes = writeMarks.get(sqlite);
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
    const writes = this.writes;
    if (writes === undefined || writes.dirty) {
      if (writes !== undefined) writes.dirty = false;
      const total = this.readTotal();
      if (total !== this.lastTotal) {
        this.lastTotal = total;
        this.current++;
      }
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
    if (before === seen) {
      this.lastTotal = this.readTotal();
      if (this.writes !== undefined) this.writes.dirty = false;
    }
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
