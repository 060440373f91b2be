/** Schemas of the tunnels routes. */
import { t } from 'elysia';
import { answerObject, Integer } from '../../http/answer-schema.ts';

export const Tunnel = answerObject(
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
  { title: 'Tunnel' },
);

export const TunnelParams = t.Object({ id: t.String({ description: 'Tunnel id' }) });
