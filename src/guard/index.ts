import { LRUCache } from "lru-cache";
import { type ContentRule, contentRulesMatching } from "./rules";

export type GuardMode = "off" | "flag" | "block";
export type GuardRule = ContentRule | "key_sharing";

export interface GuardSettings {
  /** More distinct client addresses than this on one API key within the window looks like a shared key. */
  keySharingAddresses: number;
  keySharingWindowMs: number;
}

/**
 * The abuse and prompt-injection guard: content rules over what the caller wrote (./rules.ts) and one rate pattern,
 * an API key used from more client addresses than a person uses in the window (a key shared or leaked). Each
 * tier chooses off, flag (header, usage-row flag, metric) or block (400 content_policy_violation); the pipeline
 * applies the verdict. Addresses are counted per replica, in memory.
 */
export class Guard {
  /** API key id → client address → last seen (ms). */
  private readonly addresses: LRUCache<string, Map<string, number>>;

  constructor(
    private readonly settings: GuardSettings,
    private readonly now: () => number = Date.now,
  ) {
    this.addresses = new LRUCache({ max: 100_000 });
  }

  /** The rules this request breaks: its caller-written text, and the key's recent client addresses. */
  inspect(text: string, apiKeyId: string | null, clientAddress: string | undefined): GuardRule[] {
    const rules: GuardRule[] = contentRulesMatching(text);
    if (apiKeyId && clientAddress && this.sharedKey(apiKeyId, clientAddress)) rules.push("key_sharing");
    return rules;
  }

  private sharedKey(apiKeyId: string, address: string): boolean {
    const now = this.now();
    const seen = this.addresses.get(apiKeyId) ?? new Map<string, number>();
    seen.set(address, now);
    // Bounded: addresses older than the window go; the map never holds more than the threshold plus one per call.
    for (const [known, at] of seen) if (now - at > this.settings.keySharingWindowMs) seen.delete(known);
    if (seen.size > 4 * this.settings.keySharingAddresses) seen.delete(seen.keys().next().value!);
    this.addresses.set(apiKeyId, seen);
    return seen.size > this.settings.keySharingAddresses;
  }
}

/** What the guard reads of a chat request: the text of the turns callers write (user turns and tool results). */
export function callerText(messages: ReadonlyArray<{ role: string; content?: unknown }>): string {
  const parts: string[] = [];
  for (const m of messages) {
    if (m.role !== "user" && m.role !== "tool") continue;
    if (typeof m.content === "string") parts.push(m.content);
    else if (Array.isArray(m.content)) {
      for (const part of m.content) if (typeof part?.text === "string") parts.push(part.text);
    }
  }
  return parts.join("\n");
}
