/** The `--help` and `--version` texts. */
import { version } from '../../package.json';
import { settingsHelp } from '../config.ts';
import { MIGRATION_COUNT } from '../db/migrate.ts';
import { SHUTDOWN_GRACE_MS } from './serve.ts';

/** The program's name as operators type it. */
export const PROGRAM = 'expose-server';

/** `expose-server 0.1.0 (bun 1.4.5, schema 1)`: the release, the runtime inside, the migrations compiled in. */
export function versionText(): string {
  return `${PROGRAM} ${version} (bun ${Bun.version}, schema ${MIGRATION_COUNT})`;
}

/** Usage, commands, and every setting with its flag, variable and default. */
export function helpText(): string {
  return `${PROGRAM} ${version}: self-hosted tunnel server (public HTTP and WebSocket traffic to {subdomain}.{domain}
reaches a service behind the expose client), with its account API (accounts, sessions, API keys)

Usage:
  ${PROGRAM} [serve] [settings]               run the server (the default command)
  ${PROGRAM} user add <email> [settings]      create an account, even while registration is closed
  ${PROGRAM} user passwd <email> [settings]   set an account's password and end all its sessions
  ${PROGRAM} user list [settings]             list accounts
  ${PROGRAM} user disable <email> [settings]  refuse the account's login, sessions and keys; end its sessions
  ${PROGRAM} user enable <email> [settings]   undo user disable
  ${PROGRAM} user logout <email> [settings]   end every session of the account (API keys stay)
  ${PROGRAM} user delete <email> [settings]   delete the account with its sessions and API keys, at once
  ${PROGRAM} key list <email> [settings]      list the account's API keys
  ${PROGRAM} key revoke <id|key> [settings]   delete one API key, by id (see key list) or the full key
  ${PROGRAM} backup <file> [settings]         copy the database, consistent while serving, mode 0600;
                                                 never overwrites a file; "-" writes the copy to stdout
  ${PROGRAM} healthcheck [settings]           exit 0 when the server at the configured port answers /health
  ${PROGRAM} --help | --version

Only serve and user add create the database; every other command needs it to exist. Passwords are
never taken from the command line: they are asked at the terminal (twice, not echoed) or, when stdin
is not a terminal, read as one line from stdin. user delete asks nothing: the exact email is the
confirmation (user disable is the reversible step).

Settings (a flag wins over its environment variable; --flag value or --flag=value):
${settingsHelp()}

TLS: off by default (plain HTTP on --port; put a TLS proxy in front). --tls acme serves HTTPS on
--https-port with certificates it obtains and renews itself (the API host by HTTP-01 on --http-port,
which also redirects everything else to HTTPS; *.{tunnel domain} by DNS-01 through --dns-provider),
kept in the database. --tls files serves --tls-cert-file and --tls-key-file, read again on SIGHUP or
when they change. Ports below 1024 need root or CAP_NET_BIND_SERVICE.

SIGTERM or SIGINT stops the server: it stops accepting, lets requests in flight finish (at most
${SHUTDOWN_GRACE_MS / 1000} s), then closes the database. Exit status: 0 success, 1 failure, 2 bad command line or setting.
`;
}
