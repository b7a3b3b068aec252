import { ALL_EVENT_TYPES, EVENT_TYPES, EventType } from './event-catalogue';
import { ENVELOPE_SCHEMA, exampleEvent, PAYLOAD_SCHEMAS } from './event-schemas';

/** The AsyncAPI 3 document of the events, built from the catalogue (npm run asyncapi writes asyncapi.yaml). */
export function buildAsyncApi(version: string, exchange = 'hcm.images'): Record<string, unknown> {
  const schemaName = (t: EventType) => `${t}.payload`;
  const exchangeBinding = { name: exchange, type: 'topic', durable: true, autoDelete: false, vhost: '/' };
  const channels: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};
  const schemas: Record<string, unknown> = { EventEnvelope: ENVELOPE_SCHEMA };
  ALL_EVENT_TYPES.forEach((t, n) => {
    const info = EVENT_TYPES[t];
    schemas[schemaName(t)] = { ...PAYLOAD_SCHEMAS[t], description: `payload of ${t}, version ${info.version}` };
    messages[t] = {
      name: t,
      title: t,
      summary: info.summary,
      contentType: 'application/json',
      correlationId: { location: '$message.header#/correlation_id', description: 'the correlation id of the request or job that caused the event' },
      payload: {
        allOf: [
          { $ref: '#/components/schemas/EventEnvelope' },
          { type: 'object', properties: { type: { const: t }, version: { const: info.version }, payload: { $ref: `#/components/schemas/${schemaName(t)}` } } },
        ],
      },
      examples: [{ name: t.replace(/\./g, '-'), summary: info.summary, payload: exampleEvent(t, n) }],
      bindings: { amqp: { messageType: t, contentEncoding: 'utf-8', bindingVersion: '0.3.0' } },
    };
    channels[t] = {
      address: t,
      title: t,
      description: `Routing key \`${t}\` on the topic exchange \`${exchange}\`: bind a queue with it (or a pattern such as \`${t.split('.')[0]}.#\`).`,
      messages: { [t]: { $ref: `#/components/messages/${t}` } },
      bindings: { amqp: { is: 'routingKey', exchange: exchangeBinding, bindingVersion: '0.3.0' } },
    };
    operations[`publish.${t}`] = {
      action: 'send',
      title: `Publish ${t}`,
      summary: info.summary,
      channel: { $ref: `#/channels/${t}` },
      messages: [{ $ref: `#/channels/${t}/messages/${t}` }],
      bindings: { amqp: { deliveryMode: 2, mandatory: false, ack: true, bindingVersion: '0.3.0' } },
    };
  });
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'HCM Image Service events',
      version,
      description: [
        'Image events of the HCM Image Service, published by its outbox relay to RabbitMQ (and readable as GET /events and the SSE stream GET /events/stream).',
        'Delivery is at least once: drop duplicates by message-id (= event id); `sequence` orders the events of one image without gaps.',
        'Generated from src/events/event-catalogue.ts and src/events/event-schemas.ts by `npm run asyncapi`.',
      ].join('\n\n'),
    },
    defaultContentType: 'application/json',
    servers: {
      rabbitmq: {
        host: 'rabbitmq:5672',
        protocol: 'amqp',
        protocolVersion: '0.9.1',
        description: 'The platform broker (EVENTS_AMQP_URL); the exchange is EVENTS_EXCHANGE.',
      },
    },
    channels,
    operations,
    components: { schemas, messages },
  };
}
