/**
 * A table's entries again, in an array walked by index in slices (the dialog and port-lease sweeps):
 * a Map iterator allocates a result object per entry it visits, garbage that sets how often a
 * worker's young generation is scavenged (each scavenge a pause the packets behind it wait out).
 * Each entry keeps its index (`slot`); removal swaps the last entry into the hole.
 */
export interface Slotted {
  /** the entry's index in its list; -1 when in none */
  slot: number;
}

export class SlotList<T extends Slotted> {
  private readonly items: T[] = [];
  /** where the walk goes on from; what is added meanwhile is seen in this round */
  private at = 0;

  get length(): number {
    return this.items.length;
  }

  add(x: T): void {
    x.slot = this.items.length;
    this.items.push(x);
  }

  /** Takes `x` out (nothing when it is not in this list). */
  remove(x: T): void {
    const i = x.slot;
    if (i < 0 || this.items[i] !== x) return;
    const last = this.items.pop()!;
    if (last !== x) {
      this.items[i] = last;
      last.slot = i;
    }
    x.slot = -1;
  }

  /** Every entry, for a whole pass that removes none. */
  values(): readonly T[] {
    return this.items;
  }

  clear(): void {
    for (const x of this.items) x.slot = -1;
    this.items.length = 0;
    this.at = 0;
  }

  /**
   * Visits up to `budget` entries from where the last walk stopped (from the start with no budget);
   * an entry `visit` removes has the last one put in its slot, which is visited next. True when the
   * round ended: the next walk starts over.
   */
  walk(budget: number, visit: (x: T) => void): boolean {
    if (budget === Infinity) this.at = 0;
    for (let seen = 0; seen < budget; seen++) {
      if (this.at >= this.items.length) {
        this.at = 0;
        return true;
      }
      const x = this.items[this.at]!;
      visit(x);
      if (this.items[this.at] === x) this.at++;
    }
    return false;
  }
}
