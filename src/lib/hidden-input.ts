/**
 * One secret line from the user: at a terminal, asked with echo off; otherwise the first line of
 * stdin, so scripts can pipe it. Shared by the server's `user` commands and the client's `login`:
 * secrets never come from argv, where `ps` and shell history would show them.
 */

const ENTER = new Set(['\r', '\n']);
const BACKSPACE = new Set(['\u007f', '\b']);
const CTRL_C = '\u0003';
const CTRL_D = '\u0004';
const CTRL_U = '\u0015';
const ESCAPE = '\u001b';

/** Where a hidden line stands after some keystrokes. */
export interface HiddenLine {
  text: string;
  /** `enter` once the line is complete, `abort` on Ctrl-C (or Ctrl-D on an empty line). */
  state: 'typing' | 'enter' | 'abort';
}

/**
 * Applies one chunk of raw terminal input to the line being typed. Pure, so the editing rules are
 * tested without a terminal. Escape sequences (arrow keys) arrive as one chunk and are ignored whole.
 */
export function applyKeystrokes(line: HiddenLine, chunk: string): HiddenLine {
  if (chunk.startsWith(ESCAPE)) return line;
  let text = line.text;
  for (const char of chunk) {
    if (ENTER.has(char)) return { text, state: 'enter' };
    if (char === CTRL_C || (char === CTRL_D && text === '')) return { text: '', state: 'abort' };
    if (BACKSPACE.has(char)) text = Array.from(text).slice(0, -1).join('');
    else if (char === CTRL_U) text = '';
    else if (char >= ' ') text += char;
  }
  return { text, state: 'typing' };
}

/** Asks for one line at the terminal with echo off; null when the user cancels (Ctrl-C). */
export async function promptHidden(prompt: string): Promise<string | null> {
  const stdin = process.stdin;
  // Echo goes off before the prompt shows, so nothing typed after the prompt can ever be echoed.
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  process.stderr.write(prompt);
  try {
    const result = await new Promise<HiddenLine>((resolve) => {
      let line: HiddenLine = { text: '', state: 'typing' };
      const onData = (chunk: string) => {
        line = applyKeystrokes(line, chunk);
        if (line.state === 'typing') return;
        stdin.off('data', onData);
        resolve(line);
      };
      stdin.on('data', onData);
      stdin.resume();
    });
    return result.state === 'abort' ? null : result.text;
  } finally {
    stdin.setRawMode(false);
    stdin.pause();
    process.stderr.write('\n');
  }
}

/** Reads stdin up to the first newline (or its end) and leaves the rest unread; undefined when stdin was empty. */
export async function readFirstLine(): Promise<string | undefined> {
  const reader = Bun.stdin.stream().getReader();
  const decoder = new TextDecoder();
  let text = '';
  let sawData = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      sawData = true;
      text += decoder.decode(value, { stream: true });
      if (text.includes('\n')) break;
    }
  } finally {
    reader.releaseLock();
  }
  if (!sawData) return undefined;
  const newline = text.indexOf('\n');
  const line = newline === -1 ? text : text.slice(0, newline);
  // A Windows-made file ends its lines with \r\n; the \r is not part of anyone's secret.
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}
