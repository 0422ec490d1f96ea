#!/usr/bin/env node
/**
 * Starts demo.etl, pauses it, waits until it is PAUSED, resumes it and follows
 * it to the end, printing every event.
 *
 *   node examples/demo.js [host:port]      (default: $PAUSABLE_DAEMON or 127.0.0.1:50151)
 *
 * Needs a running daemon and worker, e.g. `pausable dev` in another terminal.
 */
import { connect } from '@pausable/client'; // in this folder too: a package may import itself by its name

const target = process.argv[2] ?? process.env.PAUSABLE_DAEMON ?? '127.0.0.1:50151';
const client = connect(target);

function show(event) {
  const op = event.operation;
  // op.step is 1-based, as the CLI shows it ("step 3/5"); op.currentStep is the proto's 0-based field.
  console.log(`#${event.seq} ${event.type.padEnd(15)} ${op.state.padEnd(16)} step ${op.step}/${op.totalSteps}  ${event.message}`);
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
  // Integers beyond 2^53 - 1 come as BigInt, which JSON.stringify refuses: print them as strings of digits.
  const json = (value) => JSON.stringify(value, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
  if (final.result !== null) console.log('result:', json(final.result));
  if (final.error) console.log('error:', final.error);
  process.exitCode = final.state === 'SUCCEEDED' ? 0 : 1;
} catch (error) {
  console.error(`demo failed: ${error.name}: ${error.message}`);
  process.exitCode = 2;
} finally {
  client.close();
}
