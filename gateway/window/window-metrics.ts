import { Gauge, type Registry } from 'prom-client';
import { collectedCounter } from '../metrics.js';
import type { WindowEngineStats } from './window-engine.js';

/**
 * Exposes the engine's live stats. Values are read at scrape time (collect), so the hot path
 * pays nothing. Late readings are counted by the pipeline (pulsegate_late_readings_dropped_total).
 */
export function registerWindowMetrics(registry: Registry, stats: Readonly<WindowEngineStats>): void {
  const registers = [registry];
  const counter = (name: string, help: string, read: () => number): void => collectedCounter(registry, name, help, read);
  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  };
  counter('pulsegate_window_corrections_total', 'Windows re-emitted corrected by late data (revision >= 1)', () => stats.windowsCorrected);
  counter('pulsegate_window_overflow_evictions_total', 'Windows emitted and closed early by the "emit-oldest" overflow policy', () => stats.evictions);
  counter('pulsegate_window_idle_emissions_total', 'Windows emitted because their device fell silent', () => stats.idleEmissions);
  counter('pulsegate_window_devices_expired_total', 'Devices forgotten after idleTimeoutMs + allowedLatenessMs of silence', () => stats.devicesExpired);
  counter('pulsegate_window_devices_evicted_total', 'Devices whose windows were emitted early and state dropped by the "emit-lru" policy of window.maxDevices', () => stats.devicesEvicted);
  counter('pulsegate_window_future_readings_total', 'Readings more than window.maxWatermarkSkewMs ahead of their receive time (windowed; the watermark stops at the bound)', () => stats.futureReadings);
  counter('pulsegate_window_horizons_dropped_total', 'Forgotten devices whose horizon was dropped by the "drop-oldest" policy of window.maxForgottenDevices (a late reading from one may overwrite a stored window)', () => stats.horizonsDropped);
  gauge('pulsegate_window_open', 'Windows currently holding state', () => stats.openWindows);
  gauge('pulsegate_window_devices', 'Devices with window state', () => stats.devices);
  gauge('pulsegate_window_horizons', 'Forgotten devices whose horizon is kept (at most window.maxForgottenDevices)', () => stats.horizons);
}
