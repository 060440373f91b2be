/**
 * `bun run build`: compiles the two self-contained executables, dist/expose-server (the server: it
 * carries the migrations, inlined by a macro, and the Swagger UI assets, file imports) and dist/expose
 * (the tunnel client: nothing of the server). Neither reads a .env, bunfig.toml, tsconfig.json or
 * package.json from the directory it runs in.
 *
 *   bun scripts/build.ts [--target bun-linux-x64|bun-linux-arm64|bun-linux-x64-musl|...] [--outdir dir] [--no-bytecode]
 */
import { parseArgs } from 'node:util';
import { rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const ROOT = join(import.meta.dir, '..');
const DEFAULT_OUTDIR = join(ROOT, 'dist');
/** Each executable: its entry point and its file name in the output folder. */
const EXECUTABLES = [
  { entry: join(ROOT, 'src', 'index.ts'), name: 'expose-server' },
  { entry: join(ROOT, 'src', 'client', 'index.ts'), name: 'expose' },
];
const BYTES_PER_MIB = 1024 * 1024;

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    target: { type: 'string' },
    outdir: { type: 'string', default: DEFAULT_OUTDIR },
    'no-bytecode': { type: 'boolean', default: false },
  },
  strict: true,
});

const target = values.target as Bun.Build.CompileTarget | undefined;
const bytecode = !values['no-bytecode'];

/** Compiles one executable; exits the process with the build's logs on failure. */
async function compile(entry: string, outfile: string): Promise<void> {
  const startedMs = performance.now();
  const result = await Bun.build({
    entrypoints: [entry],
    compile: {
      // Without a target the running Bun is used as the runtime; a target other than this machine's
      // makes Bun fetch that platform's runtime once (the Docker build does not need that).
      ...(target ? { target } : {}),
      outfile,
      // A stray .env or bunfig.toml in the working directory must not change what either program does.
      autoloadDotenv: false,
      autoloadBunfig: false,
      autoloadTsconfig: false,
      autoloadPackageJson: false,
    },
    minify: true,
    // Code imported only on demand (ACME and its HTTP client, file-type behind Elysia) goes into chunks
    // of its own inside the binary, evaluated when first imported. In one file, the bundle hoisted those
    // modules' imports of Node's modules (node:https, node:tls, fs/promises, tty) to its top, and every
    // start paid for them.
    splitting: true,
    // Precompiled bytecode: the runtime skips parsing ~3 MB of bundled JavaScript at every start.
    bytecode,
    // The entry awaits at top level, which the CommonJS format that bytecode defaults to cannot express.
    format: 'esm',
    // Stack traces in logged 500s point at the sources. Bun embeds the map (compressed) in the binary.
    sourcemap: 'linked',
    define: { 'process.env.NODE_ENV': JSON.stringify('production') },
  });

  if (!result.success) {
    for (const log of result.logs) console.error(log);
    process.exit(1);
  }
  // The maps are inside the binary already; the copies Bun also writes beside it (one per chunk) are
  // not part of the artifact.
  for (const output of result.outputs) if (output.path.endsWith('.map')) rmSync(output.path, { force: true });
  const sizeMiB = statSync(outfile).size / BYTES_PER_MIB;
  const seconds = (performance.now() - startedMs) / 1000;
  console.log(
    `built ${relative(process.cwd(), outfile) || outfile} (${target ?? `bun-${process.platform}-${process.arch}`}, ` +
      `${sizeMiB.toFixed(1)} MiB, bytecode ${bytecode ? 'on' : 'off'}) in ${seconds.toFixed(1)} s`,
  );
}

for (const { entry, name } of EXECUTABLES) await compile(entry, join(values.outdir!, name));
