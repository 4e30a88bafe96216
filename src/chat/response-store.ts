import type { Database } from "../db";
import { storableJson } from "../db/text";
import type { ChatMessage } from "./responses";

/** A stored response: the object returned, and the conversation a follow-up continues. */
export type StoredResponse = {
  response: Record<string, unknown>;
  conversation: ChatMessage[];
};

/**
 * Responses kept for GET/DELETE /v1/responses/{id} and previous_response_id, in PostgreSQL as the user (role
 * `authenticated`, RLS): a user can read, chain from or delete only their own. Only requests that use them touch
 * the database: `store: false` and requests without previous_response_id add no query.
 */
export class ResponseStore {
  constructor(private readonly db: Database) {}

  async get(userId: string, id: string): Promise<StoredResponse | undefined> {
    const [row] = await this.db.asUser(userId, (tx) =>
      tx.query<StoredResponse>("select response, conversation from public.responses where id = $1", [id]),
    );
    return row;
  }

  async save(userId: string, stored: StoredResponse): Promise<void> {
    const { response, conversation } = stored;
    await this.db.asUser(userId, (tx) =>
      tx.query(
        `insert into public.responses (id, user_id, previous_response_id, conversation, response)
         values ($1, $2, $3, $4::jsonb, $5::jsonb)`,
        [
          response.id,
          userId,
          response.previous_response_id ?? null,
          storableJson(conversation),
          storableJson(response),
        ],
      ),
    );
  }

  /** Whether it existed (and was the user's). */
  async delete(userId: string, id: string): Promise<boolean> {
    const rows = await this.db.asUser(userId, (tx) =>
      tx.query("delete from public.responses where id = $1 returning 1", [id]),
    );
    return rows.length > 0;
  }
}
