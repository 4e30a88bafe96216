import { type SparseVector, termId } from "../sparse";
import {
  contextHits,
  coverageIdf,
  decodeCursor,
  type Evidence,
  fuseRankings,
  idf,
  isAfterCursor,
  type Memory,
  type MemoryDeletion,
  type MemoryPage,
  type MemorySearch,
  PREFETCH_LIMIT,
  pageOf,
  relevantOnly,
  withNeighbours,
  withRelatedWords,
} from "../store";
import { SignCodes } from "./sign-codes";
import { Postings, QueryTerms, quantizeWeight, resized, termKey, WEIGHT_SCALE } from "./terms";
import { TopK } from "./top-k";

/** Reads a memory's JSON back from the log: the index keeps where its line is, not its text. */
export type MemoryReader = (place: LogPlace) => string;

/**
 * A search result with its memory as the JSON text the log holds: the store's thread hands results over as one
 * string, so a memory is neither parsed there nor copied object by object to the server's thread.
 */
export interface ScoredText {
  memoryJson: string;
  score: number;
  evidence: Evidence;
}

/**
 * Where a memory's line is in the log (`offset`, `length`, in bytes), and where in it the memory's own JSON is (the
 * rest is its vectors): a read parses only that.
 */
export interface LogPlace {
  offset: number;
  length: number;
  memoryAt: number;
  memoryLength: number;
}

/** Up to this many memories per user, dense search is an exact scan (about 2 ms at the limit on this machine's
 * cores; past it the binary-code pass is cheaper: ~4 ms at 100,000 against ~8 ms for an exact scan of 20,000). */
const EXACT_SCAN_LIMIT = 5_000;
/** Beyond it, this many nearest by binary code are rescored exactly (Qdrant's quantization oversampling). */
const RESCORE_CANDIDATES = 2_000;
/**
 * Up to this many memories, BM25 scans the user's stored terms (a few table lookups per term); past it an inverted
 * index is kept. Most users are small, and an inverted index costs a posting list per distinct term: for a user
 * with 1,000 memories that was more memory than the memories' own vectors.
 */
const INVERTED_INDEX_LIMIT = 5_000;

/**
 * Dense vectors are kept as int8 (unit-vector components × 127, as Qdrant's scalar quantization): a quarter of the
 * memory, and rescoring reads 100 bytes per candidate instead of 400 (it is bound by memory access, not arithmetic).
 * Rank changes are negligible for ranking; the log keeps the vectors as written.
 */
const QUANTIZATION_SCALE = 127;

/** The conversation key of memories written without a conversation id. */
const NO_CONVERSATION = "\u0000";

/** A 32-bit hash of an id (BM25's FNV-1a, as int32): the index keeps ids as these and confirms a match by reading. */
const hashOf = (text: string) => termId(text) | 0;

/**
 * One user's memories, held in columns of typed arrays indexed by slot (insertion order; dead slots are skipped and
 * reclaimed when they are half): the quantized vector, the BM25 terms and weights, where the memory's line is in
 * the log, and the few fields searches filter or sort on. Texts and ids stay in the log and are read back only for
 * what a call returns: a million memories take a few hundred megabytes, not gigabytes of JavaScript objects.
 */
export class UserIndex {
  live = 0;
  private slots = 0;
  private capacity = 0;
  private alive = new Uint8Array(0);
  private vectors = new Int8Array(0);
  private offsets = new Float64Array(0);
  private lengths = new Int32Array(0);
  private memoryStarts = new Int32Array(0);
  private memoryLengths = new Int32Array(0);
  private idHashes = new Int32Array(0);
  private requestHashes = new Int32Array(0);
  /** Milliseconds since the epoch of `createdAt` (listing order). */
  private created = new Float64Array(0);
  private conversationOf = new Int32Array(0);
  /** The live slots written just before and just after this one in its conversation (-1: none): a doubly linked
   * list per conversation, so a hit's neighbours are found in O(1) however the conversations interleave. */
  private previousInConversation = new Int32Array(0);
  private nextInConversation = new Int32Array(0);
  /** Conversation number → its last live slot (-1 once none is left). */
  private lastOfConversation: number[] = [];
  /** Slot s's terms are termIds[termStart[s] .. termStart[s + 1]), with their BM25 document weights (quantized). */
  private termStart = new Int32Array(1);
  private termIds = new Int32Array(0);
  private termWeights = new Uint8Array(0);
  private readonly slotsById = new SlotsByHash((slot) => this.idHashes[slot]!);
  /** Conversation id → the number `conversationOf` holds for it (and `conversationIds` maps back). */
  private conversations = new Map<string, number>();
  private conversationIds: string[] = [];
  /** term id → posting list, once the user is past INVERTED_INDEX_LIMIT. */
  private inverted: Map<number, Postings> | undefined;
  /** Binary codes for a fast first pass once the user has more memories than an exact scan serves quickly. */
  private codes: SignCodes | undefined;
  /** Per-slot BM25 accumulator of a search, all zero between searches. */
  private scores = new Float64Array(0);

  constructor(
    private readonly dimensions: number,
    private readonly read: MemoryReader,
    /** Past how many live memories BM25 walks posting lists instead of scanning (tests set it to compare both). */
    private readonly invertedIndexAfter = INVERTED_INDEX_LIMIT,
  ) {}

  /** Indexes a memory whose line is at `place`; one with the same id is replaced. */
  put(memory: Memory, dense: Float32Array, sparse: SparseVector, place: LogPlace): void {
    const existing = this.slotOf(memory.id);
    if (existing !== undefined) {
      this.remove([existing]);
      this.reclaimIfSparse();
    }
    const slot = this.claimSlot(sparse.indices.length);
    const base = slot * this.dimensions;
    for (let d = 0; d < this.dimensions; d++) {
      this.vectors[base + d] = Math.max(-127, Math.min(127, Math.round((dense[d] ?? 0) * QUANTIZATION_SCALE)));
    }
    const from = this.termStart[slot]!;
    for (let i = 0; i < sparse.indices.length; i++) {
      this.termIds[from + i] = termKey(sparse.indices[i]!);
      this.termWeights[from + i] = quantizeWeight(sparse.values[i]!);
    }
    this.termStart[slot + 1] = from + sparse.indices.length;
    const created = Date.parse(memory.createdAt);
    this.fill(slot, {
      ...place,
      idHash: hashOf(memory.id),
      requestHash: hashOf(memory.requestId),
      created: Number.isNaN(created) ? 0 : created,
      conversation: memory.conversationId ?? NO_CONVERSATION,
    });
  }

  search(query: MemorySearch): ScoredText[] {
    let conversation = -1;
    if (query.conversationId !== undefined) {
      const known = this.conversations.get(query.conversationId);
      if (known === undefined) return [];
      conversation = known;
    }
    const own = conversation < 0 ? undefined : this.liveSlots(conversation);
    const dense = own ? this.denseTopOf(query.dense, own) : this.denseTop(query.dense);
    const terms = new QueryTerms(query.sparse, query.focus ?? query.sparse);
    const { ranking, coverWeight, mass } = this.lexical(terms, conversation, own);
    const dims = this.dimensions;
    // Evidence first, the memories themselves (read from the log) only for what is returned.
    const fused = [...fuseRankings(dense, ranking)].sort((a, b) => b[1] - a[1]).slice(0, query.limit);
    const focus = (query.focus ?? query.sparse).indices;
    const termsOf = ({ slot }: { slot: number }) =>
      this.termIds.subarray(this.termStart[slot]!, this.termStart[slot + 1]!);
    const searched = fused.map(([slot, score]) => {
      // Recomputed rather than looked up in the dense ranking: 200 dot products cost less than the lookups.
      const cosine = dot(this.vectors, slot * dims, query.dense, dims);
      const lexical = mass > 0 ? this.coverage(slot, terms, coverWeight) / mass : 0;
      return { slot, score, evidence: { lexical, dense: cosine / QUANTIZATION_SCALE } };
    });
    let kept = relevantOnly(withRelatedWords(searched, focus, termsOf, query.minRelevance), query.minRelevance);
    if (query.contextFrom !== undefined) {
      const hits = contextHits(kept, query.contextFrom);
      const around = hits.map((hit) =>
        withRelatedWords(
          this.neighbourSlots(hit.slot).map((slot) => ({ slot, score: 0, evidence: { lexical: 0, dense: 0 } })),
          focus,
          termsOf,
        ),
      );
      kept = withNeighbours(kept, hits, around, (r) => r.slot);
    }
    return kept.map(({ slot, score, evidence }) => ({ memoryJson: this.read(this.placeOf(slot)), score, evidence }));
  }

  /** The live memories written just before and just after this one in its conversation. */
  neighbours(id: string): Memory[] {
    const slot = this.slotOf(id);
    return slot === undefined ? [] : this.neighbourSlots(slot).map((other) => this.memoryAt(other));
  }

  /** The live slots of the same conversation written just before and just after this one. */
  private neighbourSlots(slot: number): number[] {
    return [this.previousInConversation[slot]!, this.nextInConversation[slot]!].filter((other) => other >= 0);
  }

  list({ conversationId, limit, after }: { conversationId?: string; limit: number; after?: string }): MemoryPage {
    const cursor = after === undefined ? undefined : decodeCursor(after);
    let slots: number[];
    if (conversationId === undefined) slots = this.liveSlots();
    else {
      const known = this.conversations.get(conversationId);
      slots = known === undefined ? [] : this.liveSlots(known);
    }
    const created = this.created;
    slots.sort((a, b) => created[b]! - created[a]!);
    const cursorTime = cursor ? Date.parse(cursor.createdAt) : Number.NaN;
    // Newest first by time; memories of the same millisecond are read and ordered as before (createdAt, then id).
    const following: Memory[] = [];
    for (let i = 0; i < slots.length && following.length <= limit; ) {
      const time = created[slots[i]!]!;
      let end = i + 1;
      while (end < slots.length && created[slots[end]!] === time) end++;
      if (!(time > cursorTime)) {
        const group = slots
          .slice(i, end)
          .map((slot) => this.memoryAt(slot))
          .filter((m) => isAfterCursor(m, cursor))
          .sort((a, b) =>
            a.createdAt === b.createdAt ? b.id.localeCompare(a.id) : b.createdAt.localeCompare(a.createdAt),
          );
        following.push(...group);
      }
      i = end;
    }
    return pageOf(following.slice(0, limit + 1), limit, cursor);
  }

  /** The live slots a deletion covers. */
  matching(which: MemoryDeletion): number[] {
    if ("ids" in which) {
      const slots = which.ids.map((id) => this.slotOf(id)).filter((slot) => slot !== undefined);
      return [...new Set(slots)];
    }
    if ("conversationId" in which) {
      const known = this.conversations.get(which.conversationId);
      return known === undefined ? [] : this.liveSlots(known);
    }
    if ("requestId" in which) {
      const hash = hashOf(which.requestId);
      return this.liveSlots().filter(
        (slot) => this.requestHashes[slot] === hash && this.memoryAt(slot).requestId === which.requestId,
      );
    }
    return this.liveSlots();
  }

  /** Removes live slots (see `matching`); then call reclaimIfSparse. */
  remove(slots: readonly number[]): void {
    for (const slot of slots) {
      if (this.alive[slot] !== 1) continue;
      this.alive[slot] = 0;
      this.live--;
      this.unlink(slot);
      this.slotsById.delete(this.idHashes[slot]!, slot);
      if (this.inverted) {
        for (let j = this.termStart[slot]!; j < this.termStart[slot + 1]!; j++) {
          this.inverted.get(this.termIds[j]!)!.live--;
        }
      }
    }
  }

  /** Takes a slot out of its conversation's list. */
  private unlink(slot: number): void {
    const previous = this.previousInConversation[slot]!;
    const next = this.nextInConversation[slot]!;
    if (previous >= 0) this.nextInConversation[previous] = next;
    if (next >= 0) this.previousInConversation[next] = previous;
    else this.lastOfConversation[this.conversationOf[slot]!] = previous;
  }

  /** Drops dead slots once they are half of them: every column is rebuilt from the live slots. */
  reclaimIfSparse(): void {
    if (this.slots <= 64 || this.live >= this.slots / 2) return;
    const old = {
      alive: this.alive,
      vectors: this.vectors,
      offsets: this.offsets,
      lengths: this.lengths,
      memoryStarts: this.memoryStarts,
      memoryLengths: this.memoryLengths,
      idHashes: this.idHashes,
      requestHashes: this.requestHashes,
      created: this.created,
      conversationOf: this.conversationOf,
      termStart: this.termStart,
      termIds: this.termIds,
      termWeights: this.termWeights,
    };
    const oldSlots = this.slots;
    const oldConversationIds = this.conversationIds;
    const dims = this.dimensions;
    this.slots = 0;
    this.live = 0;
    this.resize(0);
    this.termIds = new Int32Array(0);
    this.termWeights = new Uint8Array(0);
    this.slotsById.clear();
    this.conversations = new Map();
    this.conversationIds = [];
    this.lastOfConversation = [];
    this.inverted = undefined;
    this.codes = undefined;
    for (let from = 0; from < oldSlots; from++) {
      if (old.alive[from] !== 1) continue;
      const termFrom = old.termStart[from]!;
      const count = old.termStart[from + 1]! - termFrom;
      const slot = this.claimSlot(count);
      this.vectors.set(old.vectors.subarray(from * dims, (from + 1) * dims), slot * dims);
      const start = this.termStart[slot]!;
      this.termIds.set(old.termIds.subarray(termFrom, termFrom + count), start);
      this.termWeights.set(old.termWeights.subarray(termFrom, termFrom + count), start);
      this.termStart[slot + 1] = start + count;
      this.fill(slot, {
        offset: old.offsets[from]!,
        length: old.lengths[from]!,
        memoryAt: old.memoryStarts[from]!,
        memoryLength: old.memoryLengths[from]!,
        idHash: old.idHashes[from]!,
        requestHash: old.requestHashes[from]!,
        created: old.created[from]!,
        conversation: oldConversationIds[old.conversationOf[from]!]!,
      });
    }
  }

  /** Calls `move` with each live memory's line, in slot order, and records where it now is (log compaction). */
  relocate(move: (place: LogPlace) => number): void {
    for (let slot = 0; slot < this.slots; slot++) {
      if (this.alive[slot] === 1) this.offsets[slot] = move(this.placeOf(slot));
    }
  }

  /** The next slot, with every column grown to hold it and `terms` more terms. */
  private claimSlot(terms: number): number {
    const slot = this.slots++;
    // A quarter more each time: copies stay amortized O(1) and at most a fifth of the columns is unused.
    if (slot >= this.capacity) this.resize(Math.max(16, Math.ceil(this.capacity * 1.25)));
    const needed = this.termStart[slot]! + terms;
    if (needed > this.termIds.length) {
      const size = Math.max(64, needed, Math.ceil(this.termIds.length * 1.25));
      this.termIds = resized(this.termIds, size);
      this.termWeights = resized(this.termWeights, size);
    }
    return slot;
  }

  /** Gives back the columns' unused room (after the log is replayed: most users then only read). */
  trim(): void {
    this.resize(this.slots);
    const terms = this.termStart[this.slots]!;
    this.termIds = resized(this.termIds, terms);
    this.termWeights = resized(this.termWeights, terms);
    for (const list of this.inverted?.values() ?? []) list.trim();
  }

  private resize(size: number): void {
    this.capacity = size;
    this.alive = resized(this.alive, size);
    this.offsets = resized(this.offsets, size);
    this.lengths = resized(this.lengths, size);
    this.memoryStarts = resized(this.memoryStarts, size);
    this.memoryLengths = resized(this.memoryLengths, size);
    this.idHashes = resized(this.idHashes, size);
    this.requestHashes = resized(this.requestHashes, size);
    this.created = resized(this.created, size);
    this.conversationOf = resized(this.conversationOf, size);
    this.previousInConversation = resized(this.previousInConversation, size);
    this.nextInConversation = resized(this.nextInConversation, size);
    this.vectors = resized(this.vectors, size * this.dimensions);
    this.termStart = resized(this.termStart, size + 1);
  }

  /** Completes a claimed slot whose vector and terms are written: its fields, conversation, postings and code. */
  private fill(
    slot: number,
    fields: LogPlace & { idHash: number; requestHash: number; created: number; conversation: string },
  ): void {
    this.offsets[slot] = fields.offset;
    this.lengths[slot] = fields.length;
    this.memoryStarts[slot] = fields.memoryAt;
    this.memoryLengths[slot] = fields.memoryLength;
    this.idHashes[slot] = fields.idHash;
    this.requestHashes[slot] = fields.requestHash;
    this.created[slot] = fields.created;
    let conversation = this.conversations.get(fields.conversation);
    if (conversation === undefined) {
      conversation = this.conversationIds.push(fields.conversation) - 1;
      this.conversations.set(fields.conversation, conversation);
      this.lastOfConversation.push(-1);
    }
    this.conversationOf[slot] = conversation;
    // Slots are filled in increasing order, so the new slot is its conversation's last.
    const previous = this.lastOfConversation[conversation]!;
    this.previousInConversation[slot] = previous;
    this.nextInConversation[slot] = -1;
    if (previous >= 0) this.nextInConversation[previous] = slot;
    this.lastOfConversation[conversation] = slot;
    this.alive[slot] = 1;
    this.slotsById.add(fields.idHash, slot);
    this.live++;
    if (this.inverted) this.post(slot);
    else if (this.live > this.invertedIndexAfter) {
      this.inverted = new Map();
      for (let s = 0; s <= slot; s++) if (this.alive[s] === 1) this.post(s);
    }
    this.encode(slot);
  }

  private post(slot: number): void {
    const inverted = this.inverted!;
    for (let j = this.termStart[slot]!; j < this.termStart[slot + 1]!; j++) {
      const term = this.termIds[j]!;
      let list = inverted.get(term);
      if (!list) {
        list = new Postings();
        inverted.set(term, list);
      }
      list.add(slot, this.termWeights[j]!);
    }
  }

  /** Keeps the binary codes current: built past EXACT_SCAN_LIMIT, rebuilt (new mean) each time the index doubles. */
  private encode(slot: number): void {
    if (!this.codes && (this.live <= EXACT_SCAN_LIMIT || !SignCodes.supports(this.dimensions))) return;
    this.codes ??= new SignCodes(this.dimensions, RESCORE_CANDIDATES);
    if (this.live > 2 * this.codes.builtAt) {
      this.codes.rebuild(this.vectors, this.slots, this.alive, this.live);
    } else {
      this.codes.encode(slot, this.vectors.subarray(slot * this.dimensions, (slot + 1) * this.dimensions));
    }
  }

  private memoryAt(slot: number): Memory {
    return JSON.parse(this.read(this.placeOf(slot))) as Memory;
  }

  private placeOf(slot: number): LogPlace {
    return {
      offset: this.offsets[slot]!,
      length: this.lengths[slot]!,
      memoryAt: this.memoryStarts[slot]!,
      memoryLength: this.memoryLengths[slot]!,
    };
  }

  /** The live slot of the memory with this id (a hash match is confirmed by reading the memory). */
  private slotOf(id: string): number | undefined {
    for (const slot of this.slotsById.get(hashOf(id))) if (this.memoryAt(slot).id === id) return slot;
    return undefined;
  }

  /** Live slots in write order: the user's, or one conversation's (walked along its list: its size, not the user's). */
  private liveSlots(conversation = -1): number[] {
    const out: number[] = [];
    if (conversation >= 0) {
      for (let slot = this.lastOfConversation[conversation]!; slot >= 0; slot = this.previousInConversation[slot]!) {
        out.push(slot);
      }
      return out.reverse();
    }
    for (let slot = 0; slot < this.slots; slot++) if (this.alive[slot] === 1) out.push(slot);
    return out;
  }

  /**
   * BM25 over the user's memories (IDF from their own document frequencies), and each query term's weight in the
   * coverage evidence (`coverWeight`, summing to `mass`; see queryCoverage). Small users' stored terms are scanned;
   * large users' posting lists are walked, except for a conversation-scoped search, which scans that conversation's
   * stored terms (the posting lists only give the frequencies): its cost follows the conversation, not the user.
   */
  private lexical(terms: QueryTerms, conversation: number, conversationSlots?: readonly number[]) {
    if (this.scores.length < this.slots) this.scores = new Float64Array(this.slots + (this.slots >> 2));
    const { scores } = this;
    const count = terms.ids.length;
    const frequency = new Float64Array(count);
    const lists = this.inverted ? terms.ids.map((term) => this.inverted!.get(term)) : undefined;
    lists?.forEach((list, i) => {
      frequency[i] = list?.live ?? 0;
    });
    const own = lists ? conversationSlots : undefined;
    const matches = lists && !own ? undefined : this.scanTerms(terms, own, lists ? undefined : frequency);
    const rankWeight = new Float64Array(count);
    const coverWeight = new Float64Array(count);
    let mass = 0;
    for (let i = 0; i < count; i++) {
      // Stored weights are quantized (see WEIGHT_SCALE): the scale is taken out here, once per term.
      if (frequency[i]! > 0) rankWeight[i] = (idf(this.live, frequency[i]!) * terms.ranking[i]!) / WEIGHT_SCALE;
      coverWeight[i] = coverageIdf(this.live, frequency[i]!) * terms.focus[i]!;
      mass += coverWeight[i]!;
    }
    if (!matches) {
      // The hot loop at 100k memories (posting lists of common words run to tens of thousands): kept flat, one
      // accumulator; the coverage evidence is computed afterwards for the few candidates that are returned.
      for (let i = 0; i < count; i++) {
        const list: Postings | undefined = lists![i];
        const rank = rankWeight[i]!;
        if (!list || list.live === 0 || rank === 0) continue;
        const slots: Int32Array = list.slots;
        const weights: Uint8Array = list.weights;
        for (let j = 0, length = list.length; j < length; j++) scores[slots[j]!]! += rank * weights[j]!;
      }
    } else {
      for (let k = 0; k < matches.length; k += 3)
        scores[matches[k]!]! += rankWeight[matches[k + 1]!]! * matches[k + 2]!;
    }
    // One sequential pass picks the best and zeroes the accumulator for the next search: cheaper than keeping a list
    // of the touched slots (tens of thousands at 100k memories) and visiting them twice at random.
    const top = new TopK(PREFETCH_LIMIT);
    if (own) {
      for (const slot of own) {
        if (scores[slot] === 0) continue;
        top.offer(slot, scores[slot]!);
        scores[slot] = 0;
      }
      return { ranking: top.slotsBestFirst(), coverWeight, mass };
    }
    const { alive, conversationOf } = this;
    for (let slot = 0; slot < this.slots; slot++) {
      const score = scores[slot]!;
      if (score === 0) continue;
      scores[slot] = 0;
      if (alive[slot] === 1 && (conversation < 0 || conversationOf[slot] === conversation)) top.offer(slot, score);
    }
    return { ranking: top.slotsBestFirst(), coverWeight, mass };
  }

  /** The coverage sum of a memory: the weights of the query terms among its stored terms (each stored once). */
  private coverage(slot: number, terms: QueryTerms, coverWeight: Float64Array): number {
    let sum = 0;
    for (let j = this.termStart[slot]!, end = this.termStart[slot + 1]!; j < end; j++) {
      const i = terms.indexOf(this.termIds[j]!);
      if (i >= 0) sum += coverWeight[i]!;
    }
    return sum;
  }

  /**
   * Scans stored terms for the query's: (slot, term position, weight) triples, from the given live slots or else all
   * of them, counting each term's document frequency into `frequency` when given.
   */
  private scanTerms(terms: QueryTerms, slots: readonly number[] | undefined, frequency?: Float64Array): number[] {
    const matches: number[] = [];
    const { termIds, termWeights, termStart, alive } = this;
    for (let k = 0, n = slots ? slots.length : this.slots; k < n; k++) {
      const slot = slots ? slots[k]! : k;
      if (!slots && alive[slot] !== 1) continue;
      for (let j = termStart[slot]!, end = termStart[slot + 1]!; j < end; j++) {
        const i = terms.indexOf(termIds[j]!);
        if (i < 0) continue;
        if (frequency) frequency[i]!++;
        matches.push(slot, i, termWeights[j]!);
      }
    }
    return matches;
  }

  /** The user's nearest memories by dense vector: an exact scan while small, binary codes + rescoring past that. */
  private denseTop(query: Float32Array): number[] {
    const slots = this.slots;
    // No liveness check when no slot is dead (a user who never overwrote or deleted anything).
    const alive = this.live === slots ? undefined : this.alive;
    if (!this.codes) {
      const top = new TopK(PREFETCH_LIMIT);
      const dims = this.dimensions;
      for (let slot = 0; slot < slots; slot++) {
        if (alive === undefined || alive[slot] === 1) top.offer(slot, dot(this.vectors, slot * dims, query, dims));
      }
      return top.slotsBestFirst();
    }
    const scaled = query.map((x) => x * QUANTIZATION_SCALE);
    return this.codes.nearest(scaled, slots, alive, PREFETCH_LIMIT);
  }

  /** The nearest of the given slots, scored exactly. */
  private denseTopOf(query: Float32Array, slots: readonly number[]): number[] {
    const top = new TopK(PREFETCH_LIMIT);
    const dims = this.dimensions;
    for (const slot of slots) top.offer(slot, dot(this.vectors, slot * dims, query, dims));
    return top.slotsBestFirst();
  }
}

/**
 * Live slots by the hash of their id: open addressing over one Int32Array of slot + 1 (0: empty, -1: deleted), the
 * hashes themselves read from the index's column. A Map here cost ~50 bytes per memory; this costs 8 to 16.
 */
class SlotsByHash {
  private table = new Int32Array(16);
  /** Cells that are not empty (live and deleted): probes stay short while it is under half the table. */
  private used = 0;
  private live = 0;

  constructor(private readonly hashAt: (slot: number) => number) {}

  get(hash: number): number[] {
    const found: number[] = [];
    const mask = this.table.length - 1;
    for (let cell = this.cellOf(hash); this.table[cell] !== 0; cell = (cell + 1) & mask) {
      const slot = this.table[cell]! - 1;
      if (slot >= 0 && this.hashAt(slot) === hash) found.push(slot);
    }
    return found;
  }

  add(hash: number, slot: number): void {
    if ((this.used + 1) * 2 > this.table.length)
      this.rehash(Math.max(16, 2 ** Math.ceil(Math.log2((this.live + 1) * 4))));
    const mask = this.table.length - 1;
    let cell = this.cellOf(hash);
    while (this.table[cell]! > 0) cell = (cell + 1) & mask;
    if (this.table[cell] === 0) this.used++;
    this.table[cell] = slot + 1;
    this.live++;
  }

  delete(hash: number, slot: number): void {
    const mask = this.table.length - 1;
    for (let cell = this.cellOf(hash); this.table[cell] !== 0; cell = (cell + 1) & mask) {
      if (this.table[cell] === slot + 1) {
        this.table[cell] = -1;
        this.live--;
        return;
      }
    }
  }

  clear(): void {
    this.table = new Int32Array(16);
    this.used = 0;
    this.live = 0;
  }

  private cellOf(hash: number): number {
    return (Math.imul(hash, 0x9e3779b1) >>> 0) & (this.table.length - 1);
  }

  private rehash(size: number): void {
    const old = this.table;
    this.table = new Int32Array(size);
    this.used = 0;
    this.live = 0;
    for (const entry of old) if (entry > 0) this.add(this.hashAt(entry - 1), entry - 1);
  }
}

/** Four running sums: independent additions the CPU overlaps (about 20% faster than one sum here). */
function dot(vectors: Int8Array, base: number, query: Float32Array, dims: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let d = 0;
  for (; d + 3 < dims; d += 4) {
    s0 += vectors[base + d]! * query[d]!;
    s1 += vectors[base + d + 1]! * query[d + 1]!;
    s2 += vectors[base + d + 2]! * query[d + 2]!;
    s3 += vectors[base + d + 3]! * query[d + 3]!;
  }
  for (; d < dims; d++) s0 += vectors[base + d]! * query[d]!;
  return s0 + s1 + s2 + s3;
}
