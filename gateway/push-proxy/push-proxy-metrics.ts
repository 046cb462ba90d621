import { Counter, Gauge, type Registry } from 'prom-client';

export interface PushProxyMetrics {
  readonly created: Counter;
  readonly refused: Counter<'reason'>;
  readonly ended: Counter<'reason'>;
  readonly pushes: Counter<'result'>;
  readonly streams: Gauge;
  readonly connects: Counter;
  readonly streamErrors: Counter;
  readonly controlEvents: Counter<'event'>;
  readonly badEvents: Counter;
  readonly backpressure: Counter;
  readonly sweeps: Counter;
}

export function createPushProxyMetrics(registry: Registry, activeHandoffs: () => number): PushProxyMetrics {
  const registers = [registry];
  new Gauge({
    name: 'pulsegate_push_proxy_handoffs',
    help: 'Hand-offs being served',
    registers,
    collect() {
      this.set(activeHandoffs());
    },
  });
  return {
    created: new Counter({ name: 'pulsegate_push_proxy_handoffs_created_total', help: 'Hand-offs taken (201)', registers }),
    refused: new Counter({ name: 'pulsegate_push_proxy_handoffs_refused_total', help: 'Hand-off requests refused, by reason', labelNames: ['reason'], registers }),
    ended: new Counter({ name: 'pulsegate_push_proxy_handoffs_ended_total', help: 'Hand-offs ended, by reason', labelNames: ['reason'], registers }),
    pushes: new Counter({ name: 'pulsegate_push_proxy_pushes_total', help: 'Push attempts by result (acked, acked_small, retried, gone, too_large, rejected)', labelNames: ['result'], registers }),
    streams: new Gauge({ name: 'pulsegate_push_proxy_streams', help: 'SSE connections to the gateway (one per distinct stream + filter)', registers }),
    connects: new Counter({ name: 'pulsegate_push_proxy_stream_connects_total', help: 'SSE connects to the gateway, reconnects included', registers }),
    streamErrors: new Counter({ name: 'pulsegate_push_proxy_stream_errors_total', help: 'Failed SSE connects or reads', registers }),
    controlEvents: new Counter({ name: 'pulsegate_push_proxy_stream_control_events_total', help: 'Control events of the gateway streams (earliest, lag, overflow, other)', labelNames: ['event'], registers }),
    badEvents: new Counter({ name: 'pulsegate_push_proxy_bad_events_total', help: 'Alert events that could not be read (skipped)', registers }),
    backpressure: new Counter({ name: 'pulsegate_push_proxy_stream_backpressure_total', help: 'Times a stream stopped reading because a hand-off queue was full', registers }),
    sweeps: new Counter({ name: 'pulsegate_push_proxy_sweeps_total', help: 'Runs of the expiry sweep', registers }),
  };
}
