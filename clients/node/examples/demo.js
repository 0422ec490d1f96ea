#!/usr/bin/env node
/**
 * Starts demo.etl, pauses it, waits until it is PAUSED, resumes it and follows
 * it to the end, printing every event.
 *
 *   node examples/demo.js [host:port]      (default: $PAUSABLE_DAEMON or 127.0.0.1:50151)
 *
 * Needs a running daemon and worker, e.g. `pausable dev` in another terminal.
 */
import { connect } from '../src/index.js';

const target = process.argv[2] ?? process.env.PAUSABLE_DAEMON ?? '127.0.0.1:50151';
const client = connect(target);

function show(event) {
  const op = event.operation;
  const step = Math.min(op.currentStep + 1, op.totalSteps); // currentStep is 0-based
  console.log(`#${event.seq} ${event.type.padEnd(15)} ${op.state.padEnd(16)} step ${step}/${op.totalSteps}  ${event.message}`);
}

try {
  const op = await client.start('demo.etl', { rows: 10, step_seconds: 0.5 }, { requester: 'examples/demo.js' });
  console.log(`started ${op.workflow} as ${op.id} on ${target}`);
  let paused = false;
  let final = op;
  for await (const event of client.watch(op.id)) {
    show(event);
    final = event.operation;
    if (event.type === 'STARTED') {
      const after = await client.pause(op.id);
      console.log(`  -> pause asked; now ${after.state}`);
    } else if (event.type === 'PAUSED' && !paused) {
      paused = true;
      const after = await client.resume(op.id);
      console.log(`  -> resume asked; now ${after.state}`);
    }
  }
  console.log(`operation ${final.id} ${final.state}`);
  if (final.result !== null) console.log('result:', JSON.stringify(final.result));
  if (final.error) console.log('error:', final.error);
  process.exitCode = final.state === 'SUCCEEDED' ? 0 : 1;
} catch (error) {
  console.error(`demo failed: ${error.name}: ${error.message}`);
  process.exitCode = 2;
} finally {
  client.close();
}
