/**
 * The README's recipes as a new operator runs them: the curl walkthrough can be pasted top to bottom,
 * and the proxy snippet is one Debian 12's own nginx accepts. (The header limits it states are checked
 * against the binary in binary.test.ts.)
 */
import { describe, expect, it } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

const README = readFileSync(join(import.meta.dir, '..', 'README.md'), 'utf8');

/** The text of `## <title>` up to the next second-level heading. */
function section(title: string): string {
  const start = README.indexOf(`\n## ${title}\n`);
  expect(start).toBeGreaterThan(-1);
  const end = README.indexOf('\n## ', start + 1);
  return README.slice(start, end === -1 ? undefined : end);
}

/** The contents of every fenced block of `language` in `text`. */
function codeBlocks(text: string, language: string): string[] {
  return [...text.matchAll(new RegExp('```' + language + '\\n([\\s\\S]*?)```', 'g'))].map((match) => match[1]!);
}

describe('README', () => {
  it('logs $TOKEN out only after the last example that uses it', () => {
    const commands = codeBlocks(section('The API'), 'sh')
      .flatMap((block) => block.split('\n'))
      .filter((line) => line.includes('$TOKEN'));
    const logout = commands.findIndex((line) => line.includes('/auth/logout'));
    expect(logout).toBeGreaterThan(-1);
    expect(commands.slice(logout + 1)).toEqual([]);
  });

  it('gives an nginx snippet without the http2 directive, which nginx before 1.25.1 (Debian 12 has 1.22) refuses', () => {
    const [nginx] = codeBlocks(section('Operations'), 'nginx');
    expect(nginx).toBeDefined();
    expect(nginx).not.toMatch(/^\s*http2\s/m);
    expect(nginx).toMatch(/^\s*listen 443 ssl http2;/m);
  });

  it('backs up with the built-in command, not a sqlite3 recipe that writes a world-readable copy', () => {
    const backup = section('Operations').split('### Backup and restore')[1]!.split('\n### ')[0]!;
    const recipes = codeBlocks(backup, 'sh').join('\n');
    expect(recipes).toContain('expose-server backup');
    expect(recipes).not.toContain('sqlite3');
  });
});
