import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

export type Collector = () => Promise<void> | void;

/**
 * Prometheus metrics of one replica, served at /metrics. Modules record through the typed members;
 * gauges that need a look at a dependency (queue depth) register a collector run at scrape time.
 */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();
  private readonly collectors: Collector[] = [];

  readonly httpDuration = new Histogram({
    name: 'hcm_http_request_duration_seconds',
    help: 'HTTP request durations by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });

  readonly importBytes = new Counter({
    name: 'hcm_import_bytes_total',
    help: 'Bytes stored by imports and uploads, by source type',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });

  readonly importDuration = new Histogram({
    name: 'hcm_import_duration_seconds',
    help: 'Durations of finished imports and uploads, by source type and outcome',
    labelNames: ['source', 'outcome'] as const,
    buckets: [1, 5, 15, 60, 300, 900, 3600, 4 * 3600],
    registers: [this.registry],
  });

  readonly importFailures = new Counter({
    name: 'hcm_import_failures_total',
    help: 'Imports that ended FAILED, by source type and reason code',
    labelNames: ['source', 'code'] as const,
    registers: [this.registry],
  });

  readonly queueDepth = new Gauge({
    name: 'hcm_queue_jobs',
    help: 'Jobs in the queue by state',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });

  readonly quotaRejections = new Counter({
    name: 'hcm_quota_rejections_total',
    help: 'Requests refused with QUOTA_EXCEEDED, by resource',
    labelNames: ['resource'] as const,
    registers: [this.registry],
  });

  readonly rateLimited = new Counter({
    name: 'hcm_rate_limited_total',
    help: 'Requests refused with 429 RATE_LIMITED, by route',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  readonly rateLimitStoreErrors = new Counter({
    name: 'hcm_rate_limit_store_errors_total',
    help: 'Rate-limited requests counted in this replica only because Redis did not answer',
    registers: [this.registry],
  });

  readonly sseClients = new Gauge({
    name: 'hcm_events_sse_clients',
    help: 'Open Server-Sent Events streams (GET /events/stream) on this replica',
    registers: [this.registry],
  });

  readonly eventsBacklog = new Gauge({
    name: 'hcm_events_outbox_backlog',
    help: 'Events in the outbox not yet published to the message bus',
    registers: [this.registry],
  });

  readonly eventsPublished = new Counter({
    name: 'hcm_events_published_total',
    help: 'Events the broker confirmed, by type',
    labelNames: ['type'] as const,
    registers: [this.registry],
  });

  readonly eventsPublishLatency = new Histogram({
    name: 'hcm_events_publish_latency_seconds',
    help: 'From the commit of an event (its time) to the broker confirming it',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300],
    registers: [this.registry],
  });

  readonly eventsPublishFailures = new Counter({
    name: 'hcm_events_publish_failures_total',
    help: 'Failed attempts to connect to the broker or publish a batch (retried with backoff)',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'hcm_' });
  }

  addCollector(fn: Collector): void {
    this.collectors.push(fn);
  }

  async render(): Promise<string> {
    for (const c of this.collectors) await Promise.resolve(c()).catch(() => undefined);
    return this.registry.metrics();
  }
}
