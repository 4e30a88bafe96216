import type { Redis } from "ioredis";
import type { Logger } from "../log";

const CHANNEL = "perpetual:user-changed";

/**
 * Tells every replica that what it caches about a user (credential lookups, tier, spend, provider keys) is stale:
 * after a tier change, a revocation, an erasure. The change is applied here at once and published on Redis, where
 * every other replica's subscriber applies it before its next request. Without Redis there is one replica. If the
 * subscriber is disconnected, other replicas fall back to their cache TTL (AUTH_CACHE_TTL_SECONDS).
 */
export class UserChanges {
  private readonly listeners: Array<(userId: string) => void> = [];
  private readonly subscriber: Redis | undefined;

  constructor(
    private readonly publisher: Redis | undefined,
    private readonly logger: Logger,
    /** False for a process that only announces (the CLI): it caches nothing, so it need not listen. */
    { subscribe = true } = {},
  ) {
    if (!publisher || !subscribe) return;
    // A connection in subscriber mode can run nothing else: it gets its own.
    this.subscriber = publisher.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null });
    this.subscriber.on("error", (error) => logger.debug("user-change subscriber error", { error }));
    this.subscriber.on("message", (_channel: string, userId: string) => this.applyLocally(userId));
    this.subscriber.subscribe(CHANNEL).catch((error: unknown) => {
      logger.warn("not subscribed to user changes; other replicas' changes apply after the cache TTL", { error });
    });
  }

  /** Registers what to forget when a user changes (called once per cache at start). */
  onChange(listener: (userId: string) => void): void {
    this.listeners.push(listener);
  }

  /** Forgets the user here, then on every other replica. Never throws: the TTL bounds a lost message. */
  async announce(userId: string): Promise<void> {
    this.applyLocally(userId);
    if (!this.publisher) return;
    try {
      await this.publisher.publish(CHANNEL, userId);
    } catch (error) {
      this.logger.warn("could not publish a user change; other replicas apply it after the cache TTL", {
        user_id: userId,
        error,
      });
    }
  }

  close(): void {
    this.subscriber?.disconnect();
  }

  private applyLocally(userId: string): void {
    for (const listener of this.listeners) listener(userId);
  }
}
