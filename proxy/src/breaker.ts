/**
 * The circuit breaker in front of the cache registry. A dead cache registry must cost at most a few short
 * timeouts, not one per pull (kuik v1 had no timeouts at all: a hung registry stalled every pull, issues #503/#507).
 *
 *   closed ──(failureThreshold consecutive failures)──▶ open ──(cooldown elapsed)──▶ half-open
 *     ▲                                                  ▲                              │
 *     └──────────────── probe succeeded ─────────────────┼──────────── probe failed ───┘
 *
 * - closed: every request tries the cache first.
 * - open: requests go straight to the origin until the cooldown has elapsed.
 * - half-open: exactly one probe is allowed (the caller sends it in the background, see handler.ts `probeCache`); every request
 *   keeps going to the origin until it settles. Each failed probe doubles the cooldown, up to `maxCooldownMs`.
 *
 * Pure state machine: the clock is injected and the breaker does no I/O.
 */

/** Breaker states. */
export type BreakerState = "closed" | "open" | "half-open";

/** Where a request should go. `probe`: send one health probe to the cache, serve this request from the origin. */
export type BreakerDecision = "cache" | "origin" | "probe";

/** Options of {@link CircuitBreaker}. */
export interface BreakerOptions {
  /** Consecutive failures that open the breaker (≥ 1). */
  failureThreshold: number;
  /** First wait before a probe, in ms. */
  cooldownMs: number;
  /** Longest wait between probes, in ms (the cooldown doubles after each failed probe). */
  maxCooldownMs: number;
  now?: () => number;
  /** Called on every state change (metrics, logs); must not throw. */
  onChange?: (state: BreakerState, previous: BreakerState) => void;
}

/** See the module comment. One instance per cache registry. */
export class CircuitBreaker {
  readonly #options: BreakerOptions;
  readonly #now: () => number;
  #state: BreakerState = "closed";
  #failures = 0;
  #openedAt = 0;
  #cooldownMs: number;

  constructor(options: BreakerOptions) {
    if (options.failureThreshold < 1) throw new RangeError("failureThreshold must be at least 1");
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#cooldownMs = options.cooldownMs;
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** The current cooldown (grows while probes fail). */
  get cooldownMs(): number {
    return this.#cooldownMs;
  }

  /** Decides where the next request goes; moves open → half-open when the cooldown has elapsed. */
  decide(): BreakerDecision {
    if (this.#state === "closed") return "cache";
    if (this.#state === "half-open") return "origin";
    if (this.#now() - this.#openedAt < this.#cooldownMs) return "origin";
    this.#set("half-open");
    return "probe";
  }

  /**
   * The cache answered (any status below 500, a 404 miss included): it is alive. Ignored while open, so that a
   * straggler started before the breaker opened cannot close it; only a probe (half-open) can.
   */
  recordSuccess(): void {
    if (this.#state === "open") return;
    this.#failures = 0;
    this.#cooldownMs = this.#options.cooldownMs;
    this.#set("closed");
  }

  /** The cache failed: transport error, timeout, 5xx, or a body cut mid-stream. */
  recordFailure(): void {
    if (this.#state === "half-open") {
      this.#cooldownMs = Math.min(this.#cooldownMs * 2, this.#options.maxCooldownMs);
      this.#open();
      return;
    }
    if (this.#state === "open") return; // late failures of requests started before opening
    this.#failures++;
    if (this.#failures >= this.#options.failureThreshold) this.#open();
  }

  #open(): void {
    this.#openedAt = this.#now();
    this.#failures = 0;
    this.#set("open");
  }

  #set(state: BreakerState): void {
    const previous = this.#state;
    if (previous === state) return;
    this.#state = state;
    try {
      this.#options.onChange?.(state, previous);
    } catch {
      // An observer must never break routing.
    }
  }
}
