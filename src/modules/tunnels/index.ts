/** Routes: GET /api/v1/tunnels, GET/DELETE /api/v1/tunnels/{id}. General-class API routes like any other. */
import { Elysia, t } from 'elysia';
import type { guardPlugin, Principal } from '../../http/auth.ts';
import type { DirectReads } from '../../http/direct-reads.ts';
import { synchronous } from '../../http/synchronous.ts';
import { errorResponses } from '../../http/error-responses.ts';
import { noContent } from '../../http/openapi-document.ts';
import { Tunnel, TunnelParams } from './model.ts';
import { TUNNEL_NOT_FOUND, type TunnelService } from './service.ts';

const READ_ERRORS = errorResponses(['unauthorized', 'payload_too_large', 'rate_limited']);
const ONE_ERRORS = errorResponses(['unauthorized', 'not_found', 'payload_too_large', 'rate_limited'], { not_found: TUNNEL_NOT_FOUND });
const SECURITY: Record<string, string[]>[] = [{ jwt: [] }, { apiKey: [] }];
const TunnelList = t.Array(Tunnel);

const PREFIX = '/api/v1/tunnels';

/** The tunnels feature's routes; the GET of the list is also served by `direct`. */
export function tunnelRoutes(guard: ReturnType<typeof guardPlugin>, tunnels: TunnelService, direct: DirectReads) {
  const list = (principal: Principal) => tunnels.list(principal.userId);
  direct.add(PREFIX, list, TunnelList);
  return new Elysia({ name: 'modules.tunnels', prefix: PREFIX, detail: { tags: ['tunnels'] } })
    .use(guard)
    .get('', synchronous(({ principal }) => list(principal)), {
      access: { auth: 'any' },
      response: { 200: TunnelList, ...READ_ERRORS },
      detail: { summary: "The caller's live tunnels, newest first", security: SECURITY },
    })
    .get('/:id', synchronous(({ principal, params }) => tunnels.get(principal.userId, params.id)), {
      access: { auth: 'any' },
      params: TunnelParams,
      response: { 200: Tunnel, ...ONE_ERRORS },
      detail: { summary: 'One of the caller\'s live tunnels', security: SECURITY },
    })
    .delete(
      '/:id',
      ({ principal, params, set }) => {
        tunnels.close(principal.userId, params.id);
        set.status = 204;
      },
      {
        access: { auth: 'any', body: 'none' },
        params: TunnelParams,
        response: ONE_ERRORS,
        detail: {
          summary: 'Close a tunnel: its client is told (GoAway closed_by_owner, close 4010) and does not reconnect',
          security: SECURITY,
          responses: noContent('Closed: the subdomain answers 404 at once'),
        },
      },
    );
}
