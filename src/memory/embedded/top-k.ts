/**
 * The k best (slot, score) pairs seen, kept sorted; cheap while k is small compared with the input. Equal scores
 * rank the earlier slot first, so the result does not depend on the order slots are offered in.
 */
export class TopK {
  private readonly slots: number[] = [];
  private readonly scores: number[] = [];

  constructor(private readonly k: number) {}

  offer(slot: number, score: number): void {
    const n = this.scores.length;
    if (n === this.k && !this.before(slot, score, n - 1)) return;
    let i = n === this.k ? n - 1 : n;
    while (i > 0 && this.before(slot, score, i - 1)) {
      this.scores[i] = this.scores[i - 1]!;
      this.slots[i] = this.slots[i - 1]!;
      i--;
    }
    this.scores[i] = score;
    this.slots[i] = slot;
  }

  slotsBestFirst(): number[] {
    return this.slots.slice();
  }

  private before(slot: number, score: number, i: number): boolean {
    const other = this.scores[i]!;
    return score > other || (score === other && slot < this.slots[i]!);
  }
}
