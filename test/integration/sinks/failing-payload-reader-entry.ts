/** A sink thread entry whose payload reader cannot be built (threaded-sink.test.ts). */
import { serveSinkThread } from '../../../gateway/sinks/sink-worker.js';

serveSinkThread(() => {
  throw new Error('no payload reader here');
});
