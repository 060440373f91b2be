/** Schemas of the tunnels routes. */
import { Type } from '@sinclair/typebox';
import { t } from 'elysia';

/**
 * A JSON integer. Not Elysia's `t.Integer`: that one is for query strings and path parameters (it
 * also takes a numeric string, so the document said "a string or an integer"), and it compiles a
 * checker each time it is called, a millisecond of start-up for these few fields.
 */
const Integer = Type.Integer;

export const Tunnel = t.Object(
  {
    id: t.String({ format: 'uuid' }),
    subdomain: t.String({ examples: ['brave-otter-3f9a'] }),
    public_url: t.String({ examples: ['https://brave-otter-3f9a.expose.example.com'] }),
    local_port: Integer({ minimum: 1, maximum: 65535, examples: [3000] }),
    api_key_id: t.String({ format: 'uuid', description: 'The API key the client connected with' }),
    connected_at: t.String({ format: 'date-time', examples: ['2026-11-30T10:30:00Z'] }),
    bytes_in: Integer({ minimum: 0, description: 'Body and WebSocket payload bytes received from visitors' }),
    bytes_out: Integer({ minimum: 0, description: 'Body and WebSocket payload bytes sent to visitors' }),
    request_count: Integer({ minimum: 0, description: 'Visitor requests routed to the tunnel, counted when they arrive' }),
    active_streams: Integer({ minimum: 0, description: 'Visitor requests in flight' }),
  },
  // Exact, as every answer schema (see src/modules/users/model.ts).
  { title: 'Tunnel', additionalProperties: false },
);

export const TunnelParams = t.Object({ id: t.String({ description: 'Tunnel id' }) });
