/**
 * Reads the API key for `expose login`: at a terminal, asked with echo off; otherwise the first line
 * of stdin, so scripts can pipe it. Never from argv, where `ps` and shell history would show it.
 */
import { promptHidden, readFirstLine } from '../lib/hidden-input.ts';
import { ClientError, EXIT_INTERRUPTED } from './errors.ts';

/**
 * The API key, trimmed (a key has no spaces; a pasted one often brings a newline or a space along).
 * @throws ClientError when none was given.
 */
export async function readApiKey(): Promise<string> {
  const typed = process.stdin.isTTY ? await promptHidden('API key: ') : await readFirstLine();
  if (typed === null) throw new ClientError('cancelled', EXIT_INTERRUPTED);
  const key = (typed ?? '').trim();
  if (key === '') {
    throw new ClientError(process.stdin.isTTY ? 'no API key given' : 'no API key on stdin (pipe one line, or run at a terminal to be asked)');
  }
  return key;
}
