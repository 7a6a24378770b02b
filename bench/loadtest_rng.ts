/** A small seeded PRNG (mulberry32) for reproducible chaos and fuzzing: same seed, same choices. */
export class Rng {
  #state: number;

  constructor(readonly seed: number) {
    this.#state = seed >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)];
  }

  /** Bytes of uniform noise. */
  bytes(n: number): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.next() * 256);
    return out;
  }
}

/** The seed to use: `$name` from the environment when set (to reproduce a run), else a fresh one. */
export function seedFrom(name: string, fallback?: number): number {
  const given = Deno.env.get(name);
  if (given !== undefined && given !== "" && Number.isFinite(Number(given))) return Number(given) >>> 0;
  return fallback ?? Math.floor(Math.random() * 2 ** 31);
}
