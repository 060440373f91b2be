/** The `--help` and `--version` texts of `expose`. */
import { version } from '../../package.json';
import { DEFAULT_SERVER_URL } from './settings.ts';

/** The program's name as users type it. */
export const PROGRAM = 'expose';

/** `expose/0.1.0`: the Auth `client` field, and what `--version` prints. */
export const CLIENT_NAME = `${PROGRAM}/${version}`;

/** `expose 0.1.0 (bun 1.4.5)`. */
export function versionText(): string {
  return `${PROGRAM} ${version} (bun ${Bun.version})`;
}

/** Usage, commands, settings and exit statuses. */
export function helpText(): string {
  return `${PROGRAM} ${version}: share a local HTTP service through an Expose server

Usage:
  ${PROGRAM} login [--server URL] [--ca-file PEM]
      Asks for an API key (hidden; read from stdin when it is not a terminal), checks it with the
      server and saves both to $XDG_CONFIG_HOME/expose/config.json (mode 0600), with the CA file.
  ${PROGRAM} http <port | host:port | URL> [--subdomain NAME] [--host-header preserve] [--json]
      Opens a tunnel to the local service and prints its public URL. 3000 means
      http://localhost:3000. Requests reach the local service with Host rewritten to the local
      target unless --host-header preserve keeps the visitor's.
  ${PROGRAM} --help | --version

Settings (a flag wins over its variable, which wins over the saved login):
  --server URL   EXPOSE_SERVER    the server (default ${DEFAULT_SERVER_URL})
  --key KEY      EXPOSE_API_KEY   the API key; prefer \`expose login\` or the variable, since
                                  a flag is visible to every user in the process list
  --ca-file PEM  EXPOSE_CA_FILE   also trust this CA (a self-signed or private server certificate)
  The saved key is only sent to the server it was saved for. An https:// server is reached over
  wss:// and its certificate is always verified (the system's roots, plus --ca-file).

Output: a live display at a terminal, plain lines otherwise; --json prints one JSON object per
line ({"event":"state"|"ready"|"request",...}) for scripts.

The tunnel reconnects by itself after a drop (backoff from 0.5 s up to 30 s) and keeps its
subdomain. It stops with one line and exit status 1 when the key is refused or revoked, or the
tunnel is closed by its owner or replaced. Ctrl-C closes it and frees the subdomain at once.

Testing: EXPOSE_HEARTBEAT_MS and EXPOSE_DEAD_AFTER_MS (milliseconds) replace the 30 s heartbeat
and the 45 s silence after which the server counts as gone; only tests need them.

Exit status: 0 success or Ctrl-C, 1 failure, 2 bad command line or setting.
`;
}
