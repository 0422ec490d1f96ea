/**
 * The retry policy the Python SDK uses (pausable/retry.py), for unary calls
 * and for Watch's reconnects: which gRPC codes are worth another attempt,
 * and jittered exponential delays within a time budget.
 */
import { status } from '@grpc/grpc-js';

/** The call never reached the daemon, or the daemon shed it: safe to send again (mutations carry a request id). */
export const TRANSIENT = new Set([status.UNAVAILABLE, status.RESOURCE_EXHAUSTED]);
/** A read that ran out of time may simply be sent again; a mutation may have been applied. */
export const TRANSIENT_READS = new Set([...TRANSIENT, status.DEADLINE_EXCEEDED]);

/**
 * Jittered exponential delays in seconds (`first` doubling to `cap`) within
 * `patience` seconds. The patience starts at the first delay asked for, so a
 * long quiet Watch still gets all of it when the daemon restarts; `reset()`
 * after progress (a Watch event) gives a fresh one. `nextDelay()` is null
 * once waiting would overrun it, never when `patience` is null.
 */
export class Backoff {
  constructor(patience, { first = 0.05, cap = 1, clock = () => performance.now() / 1000, random = Math.random } = {}) {
    Object.assign(this, { patience, first, cap, clock, random });
    this.reset();
  }

  reset() {
    this.deadline = null;
    this.delay = this.first;
  }

  nextDelay() {
    if (this.patience !== null && this.patience !== undefined) {
      this.deadline ??= this.clock() + this.patience;
      if (this.clock() + this.delay > this.deadline) return null;
    }
    const wait = this.delay * (0.5 + this.random() / 2);
    this.delay = Math.min(this.delay * 2, this.cap);
    return wait;
  }
}
