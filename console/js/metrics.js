// The gateway's own health, from its Prometheus text (/metrics).

/** Parses Prometheus text format into [{ name, labels, value }]. */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (m === null) continue;
    const labels = {};
    if (m[3]) for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, '$1');
    const value = Number(m[4]);
    if (Number.isFinite(value)) out.push({ name: m[1], labels, value });
  }
  return out;
}

export function sum(samples, name, filter = () => true) {
  let n = 0;
  for (const s of samples) if (s.name === name && filter(s.labels)) n += s.value;
  return n;
}
export function max(samples, name) {
  let n = 0;
  for (const s of samples) if (s.name === name) n = Math.max(n, s.value);
  return n;
}
export function byLabel(samples, name, label) {
  const out = {};
  for (const s of samples) if (s.name === name && s.labels[label] !== undefined) out[s.labels[label]] = (out[s.labels[label]] ?? 0) + s.value;
  return out;
}

/** Health figures from two scrapes `dt` ms apart (previous may be null). */
export function health(previous, current, dtMs) {
  const rate = (name) => (previous === null || dtMs <= 0 ? null : Math.max(0, ((sum(current, name) - sum(previous, name)) * 1000) / dtMs));
  const rejected = byLabel(current, 'pulsegate_readings_rejected_total', 'reason');
  return {
    readingsPerSecond: rate('pulsegate_readings_received_total'),
    windowsPerSecond: rate('pulsegate_windows_emitted_total'),
    rejectedPerSecond: rate('pulsegate_readings_rejected_total'),
    rejectedTotal: sum(current, 'pulsegate_readings_rejected_total'),
    rejectedByReason: rejected,
    consumerLag: sum(current, 'pulsegate_log_consumer_lag_records'),
    outboxPending: sum(current, 'pulsegate_log_outbox_pending_records'),
    storeLagSeconds: max(current, 'pulsegate_log_oldest_unacked_age_seconds'),
    logBytes: sum(current, 'pulsegate_log_size_bytes'),
    clients: sum(current, 'pulsegate_mqtt_connected_clients'),
  };
}
