import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Parser } from '@asyncapi/parser';
import Ajv from 'ajv';
import { parse } from 'yaml';
import { ALL_EVENT_TYPES, EVENT_TYPES } from '../../src/events/event-catalogue';
import { ENVELOPE_SCHEMA, PAYLOAD_SCHEMAS } from '../../src/events/event-schemas';
import { renderAsyncApi } from '../../scripts/asyncapi';

const root = join(__dirname, '..', '..');
type Json = Record<string, any>;

/**
 * asyncapi.yaml is the contract of the events: generated from the catalogue the code writes events with,
 * committed, valid by the AsyncAPI parser, with a schema and a valid example for every event type.
 */
describe('asyncapi.yaml', () => {
  const committed = readFileSync(join(root, 'asyncapi.yaml'), 'utf8');
  const doc = parse(committed) as Json;

  it('is what the catalogue generates (run `npm run asyncapi` and commit it when this fails)', () => {
    expect(committed).toBe(renderAsyncApi());
  });

  it('is valid AsyncAPI by @asyncapi/parser (no errors, no warnings)', async () => {
    const { document, diagnostics } = await new Parser().parse(committed);
    expect(diagnostics.filter((d) => d.severity <= 1).map((d) => `${d.path.join('.')}: ${d.message}`)).toEqual([]);
    expect(document).toBeDefined();
    expect(
      document!
        .channels()
        .all()
        .map((c) => c.address())
        .sort(),
    ).toEqual([...ALL_EVENT_TYPES].sort());
  });

  it('has a schema and an example per event type, and every example validates against its schema', () => {
    const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
    ajv.addSchema(ENVELOPE_SCHEMA, '#/components/schemas/EventEnvelope');
    for (const t of ALL_EVENT_TYPES) {
      const msg = doc.components.messages[t];
      expect(doc.components.schemas[`${t}.payload`]).toMatchObject(PAYLOAD_SCHEMAS[t] as Json);
      expect(msg.examples).toHaveLength(1);
      const example = msg.examples[0].payload;
      expect(example).toMatchObject({ type: t, version: EVENT_TYPES[t].version });
      const envelopeOk = ajv.validate(ENVELOPE_SCHEMA, example);
      expect([t, ajv.errorsText()]).toEqual([t, envelopeOk ? 'No errors' : ajv.errorsText()]);
      expect([t, envelopeOk]).toEqual([t, true]);
      const payloadOk = ajv.validate(PAYLOAD_SCHEMAS[t], example.payload);
      expect([t, payloadOk, payloadOk ? null : ajv.errorsText()]).toEqual([t, true, null]);
      expect(doc.channels[t]).toMatchObject({ address: t, bindings: { amqp: { is: 'routingKey', exchange: { type: 'topic', durable: true } } } });
    }
  });
});
