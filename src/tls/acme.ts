/**
 * Orders certificates from an ACME CA (RFC 8555) through acme-client: one account key, a fresh
 * ECDSA P-256 key per certificate, HTTP-01 answered from memory (Http01Challenges) or DNS-01 through
 * a DnsProvider. Renewal, retries and storage are the manager's (manager.ts); this file only orders.
 */
import type { Agent } from 'node:https';
import * as acme from 'acme-client';
import { lazy } from '../lib/lazy.ts';
import { readCertificate, type CertificateMaterial } from './certificate.ts';
import type { DnsProvider } from './dns-providers.ts';
import type { Http01Challenges } from './http-challenges.ts';

/** How the CA checks that we control a name. */
export type ChallengeType = 'http-01' | 'dns-01';

/** What the manager needs of an ACME client; tests hand in fakes. */
export interface CertificateIssuer {
  /** The ACME directory URL: which CA's certificates these are (kept with each one in the store). */
  readonly directoryUrl: string;
  /** Orders one certificate for `names` (the first is its common name), proving each by `challenge`. */
  issue(names: readonly string[], challenge: ChallengeType): Promise<CertificateMaterial>;
}

/** The name DNS-01 puts the TXT record under for `domain` (a wildcard's is its base domain's). */
export const dnsChallengeName = (domain: string) => `_acme-challenge.${domain.replace(/^\*\./, '')}`;

/**
 * Retries of one HTTP request inside acme-client (on no answer, 429 and 5xx), process-wide. Its default,
 * 5 retries 5 s apart growing (75 s), would hide a CA that is down from our log for over a minute; the
 * manager owns retrying with backoff, so a request gets two more tries (2 s, then 4 s) and then fails.
 */
const REQUEST_RETRIES = 2;
const REQUEST_RETRY_DELAY_SECONDS = 2;

/**
 * An order's status is polled after this long, then twice as long, up to the maximum (acme-client's
 * default starts at 5 s; Let's Encrypt usually validates within a second or two).
 */
const POLL_MIN_MS = 1_000;
const POLL_MAX_MS = 10_000;
/** Polls before an order that stays pending counts as failed (about 2 minutes with the delays above). */
const POLL_ATTEMPTS = 15;

/**
 * node:https and node:tls, loaded when an extra CA is first trusted. This module itself is imported
 * only when ACME is on, but a bundle hoists the imports of Node's modules to its top, where they were
 * evaluated at every start: ~12 ms of the server's start-up (node:http, diagnostics_channel and the
 * root certificates), and megabytes of memory, for a feature most servers never turn on.
 */
const nodeHttps = lazy(() => require('node:https') as typeof import('node:https'));
const rootCertificates = lazy(() => (require('node:tls') as typeof import('node:tls')).rootCertificates);

/** Bound on the look at the directory before an order. */
const DIRECTORY_TIMEOUT_MS = 15_000;

/** HTTPS agents that trust an extra CA, by the origin of the ACME directory that needs it. */
const agentsByOrigin = new Map<string, Agent>();
let interceptorInstalled = false;

/**
 * Makes acme-client's requests to `directoryUrl`'s origin trust `caPem` besides the public roots
 * (for a private or test CA). acme-client sends every request through one process-wide axios
 * instance with Node's http adapter, so the agent is chosen per request by origin: NODE_EXTRA_CA_CERTS
 * is read once at process start and setting it later changes nothing.
 */
export function trustExtraCa(directoryUrl: string, caPem: string): void {
  agentsByOrigin.set(new URL(directoryUrl).origin, new (nodeHttps().Agent)({ ca: [...rootCertificates(), caPem] }));
  if (interceptorInstalled) return;
  interceptorInstalled = true;
  acme.axios.interceptors.request.use((config) => {
    if (config.url !== undefined) {
      const agent = agentsByOrigin.get(new URL(config.url).origin);
      if (agent !== undefined) config.httpsAgent = agent;
    }
    return config;
  });
}

export interface AcmeIssuerOptions {
  directoryUrl: string;
  /** PEM of the account's private key (CertificateStore.accountKey()). */
  accountKeyPem: string;
  /** Contact address given to the CA (expiry warnings, policy changes). */
  email?: string;
  /** PEM of a CA to trust for the directory's HTTPS (a test or private CA), besides the public roots. */
  extraCaPem?: string;
  /** Where HTTP-01 answers go; the plain-HTTP listener serves them. */
  http01: Http01Challenges;
  /** Needed for DNS-01 orders (wildcards). */
  dns?: DnsProvider;
  /** Order status polling, for tests against a fast CA. */
  pollMinMs?: number;
  pollMaxMs?: number;
  /** Retries of one request inside acme-client (process-wide, see REQUEST_RETRIES); for tests. */
  requestRetries?: number;
}

/**
 * An ACME account at one CA. Agrees to the CA's terms of service: configuring ACME is the operator's
 * agreement. The challenge is never pre-checked by acme-client (`skipChallengeVerification`): its check
 * fetches `http://{name}:80` through this machine's DNS, which hangs for minutes where the name does
 * not resolve here (split DNS, NAT, a test CA) and proves nothing the CA does not check itself.
 */
export class AcmeIssuer implements CertificateIssuer {
  readonly directoryUrl: string;
  /**
   * Reused across orders (directory, nonce, account URL), with its one account registration that
   * concurrent orders share; dropped after a failure so the next attempt starts clean.
   */
  private session: { client: acme.Client; account: Promise<unknown> } | undefined;

  constructor(private readonly options: AcmeIssuerOptions) {
    this.directoryUrl = options.directoryUrl;
    // acme-client's own settings on its axios instance (not in its type definitions).
    const defaults = acme.axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number; retryDefaultDelay: number } };
    defaults.acmeSettings.retryMaxAttempts = options.requestRetries ?? REQUEST_RETRIES;
    defaults.acmeSettings.retryDefaultDelay = REQUEST_RETRY_DELAY_SECONDS;
    if (options.extraCaPem !== undefined) trustExtraCa(options.directoryUrl, options.extraCaPem);
  }

  /** The client, its account registered (once, whoever asks first) before it is handed out. */
  private async acmeClient(): Promise<acme.Client> {
    if (this.session === undefined) {
      const client = new acme.Client({
        directoryUrl: this.options.directoryUrl,
        accountKey: this.options.accountKeyPem,
        backoffAttempts: POLL_ATTEMPTS,
        backoffMin: this.options.pollMinMs ?? POLL_MIN_MS,
        backoffMax: this.options.pollMaxMs ?? POLL_MAX_MS,
      });
      this.session = { client, account: this.register(client) };
    }
    await this.session.account;
    return this.session.client;
  }

  /**
   * Finds the account of our key, or creates it. acme-client's own registration (inside `auto`) has
   * two faults this avoids: two orders started together on a fresh client both register, and for
   * an account that exists already it sends the registration's fields as an account update, which
   * without an email is an empty update that Pebble refuses ("Use POST-as-GET ..."), so every order
   * after a restart failed. Here: look the account up (`onlyReturnExisting`, answered by a POST-as-GET),
   * create it only when there is none, and keep the contact address current.
   */
  private async register(client: acme.Client): Promise<void> {
    const contact = this.options.email === undefined ? {} : { contact: [`mailto:${this.options.email}`] };
    try {
      await client.createAccount({ onlyReturnExisting: true });
    } catch {
      // No account for this key (or the CA is unreachable: then this fails with the CA's own error).
      await client.createAccount({ termsOfServiceAgreed: true, ...contact });
      return;
    }
    if (this.options.email !== undefined) await client.updateAccount(contact);
  }

  /**
   * Orders a certificate for `names` and returns it with its new private key.
   * @throws what acme-client or the DNS provider threw (the CA's problem document, a refused connection, ...).
   */
  async issue(names: readonly string[], challenge: ChallengeType): Promise<CertificateMaterial> {
    const dns = this.options.dns;
    if (challenge === 'dns-01' && dns === undefined) throw new Error('a DNS-01 order needs a DNS provider');
    const http01 = this.options.http01;
    try {
      await this.reachDirectory();
      const [keyPem, csr] = await acme.crypto.createCsr({ commonName: names[0], altNames: [...names] }, await acme.crypto.createPrivateEcdsaKey('P-256'));
      const client = await this.acmeClient();
      const certPem = await client.auto({
        csr,
        email: this.options.email,
        termsOfServiceAgreed: true,
        skipChallengeVerification: true,
        challengePriority: [challenge],
        challengeCreateFn: async (authz, chall, keyAuthorization) => {
          if (chall.type === 'http-01') return http01.present(chall.token, keyAuthorization);
          if (chall.type !== 'dns-01' || dns === undefined) throw new Error(`unexpected challenge ${chall.type}`);
          await dns.present(dnsChallengeName(authz.identifier.value), keyAuthorization);
          if (dns.propagationDelayMs > 0) await Bun.sleep(dns.propagationDelayMs);
        },
        challengeRemoveFn: async (authz, chall, keyAuthorization) => {
          if (chall.type === 'http-01') return http01.remove(chall.token);
          if (chall.type === 'dns-01' && dns !== undefined) await dns.cleanup(dnsChallengeName(authz.identifier.value), keyAuthorization);
        },
      });
      return readCertificate(certPem.toString(), keyPem.toString());
    } catch (error) {
      this.session = undefined;
      // acme-client's retry interceptor, out of retries on a request that got no answer, reads the
      // missing response and throws this TypeError instead of the network error.
      if (error instanceof TypeError && error.message.includes('response.config')) {
        throw new Error(`the ACME server ${new URL(this.directoryUrl).origin} stopped answering during the order`);
      }
      throw error;
    }
  }

  /**
   * Fetches the directory first, so a CA that is down or untrusted fails with a line that says so
   * (acme-client would report "undefined is not an object (evaluating 'response.config')").
   * @throws Error naming the directory URL and the cause (ECONNREFUSED, ENOTFOUND, a certificate error, an HTTP status).
   */
  private async reachDirectory(): Promise<void> {
    const { directoryUrl, extraCaPem } = this.options;
    let response: Response;
    try {
      response = await fetch(directoryUrl, {
        signal: AbortSignal.timeout(DIRECTORY_TIMEOUT_MS),
        ...(extraCaPem !== undefined ? { tls: { ca: [...rootCertificates(), extraCaPem] } } : {}),
      });
    } catch (error) {
      const { code, message } = error as { code?: string; message?: string };
      throw new Error(`the ACME directory ${directoryUrl} did not answer: ${code !== undefined && !String(message).startsWith(code) ? `${code} ` : ''}${message}`);
    }
    await response.body?.cancel();
    if (!response.ok) throw new Error(`the ACME directory ${directoryUrl} answered HTTP ${response.status}`);
  }
}
