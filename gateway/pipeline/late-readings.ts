import type { Clock } from '../clock.js';
import type { EventBus } from '../events.js';
import { encodeDeadLetter } from '../log/dead-letter.js';
import { RECORD_TYPES, type MessageLog } from '../log/types.js';

/**
 * Keeps every reading later than allowed lateness as a dead letter (reason `late`), once: on the
 * live path only, since a replay meets the same reading late again. Returns the unsubscribe.
 */
export function deadLetterLateReadings(events: EventBus, log: Pick<MessageLog, 'append'>, clock: Clock): () => void {
  return events.on('reading.late', ({ reading, sizeMs, replay }) => {
    if (replay) return;
    log.append(
      RECORD_TYPES.deadLetter,
      encodeDeadLetter({
        at: clock.now(),
        reason: 'late',
        // The topic it came on (ingest's sensors/<kind>/<deviceId>).
        topic: `sensors/${reading.kind}/${reading.deviceId}`,
        detail: `window size ${sizeMs} ms`,
        payload: Buffer.from(JSON.stringify(reading)),
      }),
    );
  });
}
